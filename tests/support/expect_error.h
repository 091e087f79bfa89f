#ifndef ANODE_TESTS_SUPPORT_EXPECT_ERROR_H_
#define ANODE_TESTS_SUPPORT_EXPECT_ERROR_H_

// One helper for the tests that check an error: the call must throw E, and
// E's message must contain every given fragment.

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace anode::testing {

/// Runs f, expecting an exception of type E whose message contains each of
/// `fragments`; records a test failure otherwise. Returns the message ("" if
/// nothing or something else was thrown) for further checks.
template <class E, class F>
std::string expect_error(F&& f, std::initializer_list<std::string_view> fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (std::string_view frag : fragments) {
      EXPECT_NE(msg.find(frag), std::string::npos) << "message '" << msg << "' lacks '" << frag << "'";
    }
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected another exception type, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

}  // namespace anode::testing

#endif  // ANODE_TESTS_SUPPORT_EXPECT_ERROR_H_
