// Command-line parsing shared by the `simdiff` subcommands. A subcommand declares its options
// once (name, value placeholder, default, description); parsing, error messages and --help text
// all come from that declaration, so they cannot drift apart.
//   --name value | --name=value   an option with a value
//   --name                        a switch (declared with an empty placeholder)
//   --help, -h                    sets Args::help; required options are then not enforced
//   --                            everything after it is positional
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"

namespace sd::cli {

// A mistake in the command line (as opposed to a failure while running): exit status 2.
struct UsageError : Error {
  using Error::Error;
};

struct Option {
  std::string name;           // without dashes: "inputs"
  std::string value;          // placeholder in help ("FILE"); empty for a switch
  std::string default_value;  // used when the option is absent; empty: none
  std::string help;
  bool required = false;
};

struct Command {
  std::string name;        // as typed, for messages: "simdiff op"
  std::string positional;  // placeholder in the usage line ("NAME"); empty: none accepted
  size_t max_positional = 0;
  std::string summary;     // first paragraph of --help
  std::vector<Option> options;
  std::string epilog;      // after the option list (examples); may be empty
};

class Args {
 public:
  bool help = false;
  std::vector<std::string> positional;

  bool has(const std::string& name) const;  // given, or has a default
  bool flag(const std::string& name) const;  // a switch that was given
  const std::string& get(const std::string& name) const;  // throws UsageError when absent
  // The whole value must parse, and fall in [lo, hi]: "option --steps for 'simdiff sample'
  // expected an integer in 1..1000000, got '4294967297'".
  int64_t get_int(const std::string& name, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const;
  // A finite number in [lo, hi] ("nan", "inf" and "2x" are refused).
  double get_double(const std::string& name, double lo = -HUGE_VAL, double hi = HUGE_VAL) const;
  // "LO,HI": two finite numbers with LO <= HI.
  std::pair<double, double> get_interval(const std::string& name) const;

 private:
  friend Args parse(const Command&, int, char**);
  std::string command_;               // for messages
  std::set<std::string> declared_;    // catches typos in the subcommand's own lookups
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  void check_declared(const std::string& name) const;
};

// Parses argv[1..argc) (argv[0] is the subcommand's name). Throws UsageError for an unknown
// option (with a suggestion), a missing value, a switch given a value, an option given twice, a
// missing required option, or too many positional arguments.
Args parse(const Command& cmd, int argc, char** argv);

// "usage: simdiff op NAME [options]", the summary, one aligned line per option, the epilog.
std::string help_text(const Command& cmd);

// ---- subcommands: each takes argv starting at its own name and returns the exit status ----
int cmd_op(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_trace(int argc, char** argv);

}  // namespace sd::cli
