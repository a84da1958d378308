#include "tools/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <sstream>

#include "runtime/error.h"
#include "runtime/file_io.h"

namespace sd {
namespace {

// Per series: the raw line (light, thin) and its EMA (dark, bold) in one hue.
struct Style {
  const char* raw;
  const char* ema;
};
const Style kStyles[] = {
    {"stroke=\"#9ecae1\" stroke-width=\"1\"", "stroke=\"#08519c\" stroke-width=\"2\""},
    {"stroke=\"#fdae6b\" stroke-width=\"1\"", "stroke=\"#a63603\" stroke-width=\"2\""},
    {"stroke=\"#a1d99b\" stroke-width=\"1\"", "stroke=\"#006d2c\" stroke-width=\"2\""},
    {"stroke=\"#bcbddc\" stroke-width=\"1\"", "stroke=\"#54278f\" stroke-width=\"2\""}};

struct Pt {
  double x, y;  // y already on the plotted scale (log10 for a log axis)
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

// 1, 2 or 5 times a power of ten, close to range / target.
double nice_step(double range, int target) {
  double raw = range / target, p = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

std::vector<double> linear_ticks(double lo, double hi, int target) {
  double step = nice_step(hi - lo, target);
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  return t;
}

// Tick positions in log10 units: whole decades (every k-th when many are in view), plus 2x and
// 5x when fewer than three decades show (otherwise a narrow range gets one tick or none).
std::vector<double> log_ticks(double lo, double hi) {
  double first = std::ceil(lo), last = std::floor(hi);
  double decades = last - first + 1, every = std::max(1.0, std::ceil(decades / 8));
  std::vector<double> t;
  for (double e = std::floor(lo); e <= last; ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m == 1 ? std::fmod(e - first, every) != 0 : decades >= 3) continue;
      double v = e + std::log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) t.push_back(v);
    }
  if (t.size() < 2) {  // less than a factor 2.5 in view: linear ticks, placed on the log scale
    t.clear();
    for (double v : linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), 4))
      if (v > 0) t.push_back(std::log10(v));
  }
  return t;
}

// Bias-corrected exponential moving average (the correction stops the curve starting at 0).
std::vector<Pt> ema(const std::vector<Pt>& pts, double a) {
  std::vector<Pt> out;
  double acc = 0, weight = 0;
  for (const Pt& p : pts) {
    acc = a * acc + (1 - a) * p.y;
    weight = a * weight + (1 - a);
    out.push_back({p.x, acc / weight});
  }
  return out;
}

}  // namespace

void write_loss_svg(const std::string& path, const std::vector<std::pair<int64_t, double>>& points,
                    const std::string& title, const PlotOptions& opt) {
  write_loss_svg(path, std::vector<Series>{{"", points}}, title, opt);
}

void write_loss_svg(const std::string& path, const std::vector<Series>& series,
                    const std::string& title, const PlotOptions& opt) {
  SD_CHECK(opt.width >= 200 && opt.height >= 150, "write_loss_svg '", path,
           "': chart must be at least 200x150, got ", opt.width, "x", opt.height);
  SD_CHECK(opt.smoothing >= 0 && opt.smoothing < 1, "write_loss_svg '", path,
           "': smoothing must be in [0, 1), got ", opt.smoothing);
  SD_CHECK(!series.empty() && series.size() <= std::size(kStyles), "write_loss_svg '", path,
           "': 1 to ", std::size(kStyles), " series, got ", series.size());

  std::vector<std::vector<Pt>> lines;
  bool any = false;
  for (const Series& s : series) {
    std::vector<Pt>& pts = lines.emplace_back();
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y) && (!opt.log_y || y > 0))
        pts.push_back({double(x), opt.log_y ? std::log10(y) : y});
    std::stable_sort(pts.begin(), pts.end(), [](const Pt& a, const Pt& b) { return a.x < b.x; });
    any |= !pts.empty();
  }

  const double left = 72, right = 24, top = 44, bottom = 52;
  const double W = opt.width, H = opt.height, pw = W - left - right, ph = H - top - bottom;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" viewBox=\"0 0 " << W << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">"
      << xml_escape(title) << "</text>\n";

  if (!any) {
    svg << "<text x=\"" << W / 2 << "\" y=\"" << H / 2
        << "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n";
  } else {
    double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL;
    for (const auto& pts : lines)
      for (const Pt& p : pts) {
        x0 = std::min(x0, p.x);
        x1 = std::max(x1, p.x);
        y0 = std::min(y0, p.y);
        y1 = std::max(y1, p.y);
      }
    if (x1 == x0) {  // a single step: give the axis some width
      x0 -= 1;
      x1 += 1;
    }
    // Headroom; a flat series gets +-half a decade (log) or +-10% (linear) around its value.
    double margin = y1 > y0 ? (y1 - y0) * 0.05 : opt.log_y ? 0.5 : y0 != 0 ? std::abs(y0) * 0.1 : 1;
    y0 -= margin;
    y1 += margin;
    auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
    auto sy = [&](double y) { return top + (y1 - y) / (y1 - y0) * ph; };

    // Grid and tick labels.
    svg << "<g stroke=\"#e6e6e6\">\n";
    std::vector<double> xt = linear_ticks(x0, x1, 6);
    std::vector<double> yt = opt.log_y ? log_ticks(y0, y1) : linear_ticks(y0, y1, 6);
    for (double x : xt)
      svg << "<line x1=\"" << sx(x) << "\" y1=\"" << top << "\" x2=\"" << sx(x) << "\" y2=\""
          << top + ph << "\"/>\n";
    for (double y : yt)
      svg << "<line x1=\"" << left << "\" y1=\"" << sy(y) << "\" x2=\"" << left + pw << "\" y2=\""
          << sy(y) << "\"/>\n";
    svg << "</g>\n<g fill=\"#333\">\n";
    for (double x : xt)
      svg << "<text x=\"" << sx(x) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">"
          << num(x) << "</text>\n";
    for (double y : yt)
      svg << "<text x=\"" << left - 6 << "\" y=\"" << sy(y) + 4 << "\" text-anchor=\"end\">"
          << num(opt.log_y ? std::pow(10.0, y) : y) << "</text>\n";
    svg << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">"
        << xml_escape(opt.x_label) << "</text>\n"
        << "<text transform=\"translate(16," << top + ph / 2
        << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(opt.y_label)
        << (opt.log_y ? " (log)" : "") << "</text>\n</g>\n";
    svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
        << "\" fill=\"none\" stroke=\"#333\"/>\n";

    auto polyline = [&](const std::vector<Pt>& line, const char* style) {
      svg << "<polyline fill=\"none\" " << style << " points=\"";
      for (const Pt& p : line) svg << num(sx(p.x)) << ',' << num(sy(p.y)) << ' ';
      svg << "\"/>\n";
    };
    // Every raw line first, then the EMAs over them.
    for (size_t k = 0; k < lines.size(); ++k) polyline(lines[k], kStyles[k].raw);
    if (opt.smoothing > 0)
      for (size_t k = 0; k < lines.size(); ++k) polyline(ema(lines[k], opt.smoothing), kStyles[k].ema);

    // Legend, top right inside the frame: "raw" and "EMA a" for one series, else the names.
    std::vector<std::pair<std::string, const char*>> legend;
    if (series.size() == 1) {
      if (opt.smoothing > 0)
        legend = {{"raw", kStyles[0].raw}, {"EMA " + num(opt.smoothing), kStyles[0].ema}};
    } else {
      for (size_t k = 0; k < series.size(); ++k)
        legend.push_back({series[k].name, opt.smoothing > 0 ? kStyles[k].ema : kStyles[k].raw});
    }
    if (!legend.empty()) {
      size_t longest = 0;
      for (const auto& e : legend) longest = std::max(longest, e.first.size());
      double lx = left + pw - 40 - 7.0 * double(longest), ly = top + 16;
      svg << "<g fill=\"#333\">\n";
      for (const auto& [text, style] : legend) {
        svg << "<line x1=\"" << lx << "\" y1=\"" << ly << "\" x2=\"" << lx + 20 << "\" y2=\"" << ly
            << "\" " << style << "/>\n<text x=\"" << lx + 26 << "\" y=\"" << ly + 4 << "\">"
            << xml_escape(text) << "</text>\n";
        ly += 18;
      }
      svg << "</g>\n";
    }
  }
  svg << "</svg>\n";

  write_file_atomic(path, svg.str());
}

}  // namespace sd
