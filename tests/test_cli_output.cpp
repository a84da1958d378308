// What a user sees of a run's output: the progress display announces every sample grid it
// writes, and `simdiff sample` lays out its grid as the README says (--pad, --each).
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"
#include "tools/image_io.h"

namespace {

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

TEST(CliOutput, GridsAreAnnouncedAndPadIsTheLayout) {
  TempDir tmp;
  const std::string run = tmp / "run";
  RunResult r = run_simdiff("train --device cpu --config " + q(kTiny) + " --steps 4 --sample-every 2 --out " + q(run));
  ASSERT_EQ(r.status, 0) << r.output;
  // One line per grid, with its path: step 2 (sample_every), then the final one.
  EXPECT_NE(r.output.find("samples: wrote " + run + "/samples/step_000002.png"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("samples: wrote " + run + "/samples/final.png"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(run + "/samples/step_000002.png"));
  EXPECT_EQ(run_simdiff("train --quiet --device cpu --config " + q(kTiny) + " --steps 4 --sample-every 2 --overwrite --out " + q(run)).output.find("samples:"),
            std::string::npos) << "--quiet prints no progress, grids included";

  // tiny.json: 6 classes of 8x8 images; --n 2 gives 6 rows of 2. Image k at
  // x = P + (k % 2)(8 + P), y = P + (k / 2)(8 + P); the padding is grey 128.
  const std::string ck = run + "/ckpt.safetensors";
  for (int pad : {0, 2, 5}) {
    const std::string png = tmp / ("grid" + std::to_string(pad) + ".png");
    r = run_simdiff("sample --device cpu --ckpt " + q(ck) + " --n 2 --steps 2 --pad " + std::to_string(pad) +
                    " --out " + q(png) + (pad == 5 ? " --each " + q(tmp / "each") : ""));
    ASSERT_EQ(r.status, 0) << r.output;
    sd::Image8 g = sd::read_image(png);
    EXPECT_EQ(g.width, 2 * 8 + 3 * pad) << "--pad " << pad;
    EXPECT_EQ(g.height, 6 * 8 + 7 * pad) << "--pad " << pad;
    if (pad == 5) {
      for (int c = 0; c < 3; ++c) EXPECT_EQ(g.pixels[size_t(c)], 128) << "padding is grey";
      // --each: the same 12 images, one file each, in grid order: image 3's top-left pixel is
      // the grid's pixel at (x, y) = (5 + 13, 5 + 13).
      for (int k = 0; k < 12; ++k) {
        char name[16];
        std::snprintf(name, sizeof name, "/%05d.png", k);
        ASSERT_TRUE(std::filesystem::exists(tmp / "each" + name)) << name;
      }
      sd::Image8 tile = sd::read_image(tmp / "each" + "/00003.png");
      ASSERT_EQ(tile.width, 8);
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(tile.pixels[size_t(c)], g.pixels[(size_t(18) * g.width + 18) * 3 + c]);
    }
  }
  r = run_simdiff("sample --device cpu --ckpt " + q(ck) + " --pad 65 --out " + q(tmp / "x.png"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--pad"), std::string::npos) << r.output;
}

}  // namespace
