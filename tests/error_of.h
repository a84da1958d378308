// Tests of bad input check the message, not just that something was thrown.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "runtime/error.h"

// The message of the sd::Error thrown by f, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sd::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Expects f to throw an sd::Error whose message contains `needle`.
template <class F>
void expect_error_containing(F&& f, const std::string& needle) {
  std::string msg = error_of(f);
  EXPECT_NE(msg.find(needle), std::string::npos)
      << "message: " << msg << "\nexpected to contain: " << needle;
}
