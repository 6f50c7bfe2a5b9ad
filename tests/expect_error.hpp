// expect_error<E>(f, message): f() must throw E (or a subclass) whose what() is exactly message.
// CPython's error messages are part of mproc's contract, so tests check them word for word.
#pragma once

#include <exception>
#include <string>
#include <typeinfo>

#include <gtest/gtest.h>

template <class E, class F>
void expect_error(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "expected an exception: " << message;
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()), message);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type (" << typeid(e).name() << "): " << e.what();
  }
}
