// simdiff: one binary, one subcommand per task. A subcommand is wired in by one row of kCommands;
// it parses its own options (tools/cli.h) and returns the exit status. Errors surface here:
// usage mistakes exit 2, failures while running exit 1, both as "simdiff: error: <message>";
// "internal:" marks an exception that is a bug of ours, not a problem with the input.
#include <algorithm>
#include <iostream>
#include <new>
#include <string>

#include "tools/cli.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand's name
  const char* summary;
};

const Subcommand kCommands[] = {
    {"train", sd::cli::cmd_train, "train a model from a JSON config (resumable)"},
    {"sample", sd::cli::cmd_sample, "draw a PNG grid of samples from a checkpoint"},
    {"info", sd::cli::cmd_info, "show a checkpoint's config and parameters per module"},
    {"trace", sd::cli::cmd_trace, "one training step, every activation and gradient to a file"},
    {"op", sd::cli::cmd_op, "run one registered op on tensors from safetensors files"},
};

void print_help(std::ostream& os) {
  os << "usage: simdiff <command> [options]\n\ncommands:\n";
  for (auto& c : kCommands) {
    std::string name = c.name;
    name.resize(std::max<size_t>(name.size() + 2, 10), ' ');
    os << "  " << name << c.summary << "\n";
  }
  os << "\n'simdiff <command> --help' describes a command's options.\n";
}

int fail_with(const char* what, int status) {
  std::cerr << "simdiff: error: " << what << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_help(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h") {
    print_help(std::cout);
    return 0;
  }
  for (auto& c : kCommands) {
    if (name != c.name) continue;
    int status;
    try {
      status = c.run(argc - 1, argv + 1);
    } catch (const sd::cli::UsageError& e) {
      return fail_with(e.what(), 2);
    } catch (const sd::Error& e) {
      return fail_with(e.what(), 1);
    } catch (const std::bad_alloc&) {
      return fail_with("out of memory", 1);
    } catch (const std::exception& e) {
      return fail_with(sd::detail::capped(std::string("internal: ") + e.what()).c_str(), 1);
    }
    // What a command printed (info's report, a --list) must have arrived: stdout may be a full
    // disk or a closed pipe.
    if (!(std::cout << std::flush))
      return fail_with("cannot write to standard output", 1);
    return status;
  }
  std::string names;
  for (auto& c : kCommands) names += (names.empty() ? "" : ", ") + std::string(c.name);
  return fail_with(("unknown command '" + name + "' (commands: " + names +
                    "); see simdiff --help").c_str(), 2);
}
