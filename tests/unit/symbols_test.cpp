// Code addresses survive exec as (module, offset): the lookup that spawn relies on.
#include "platform/linux/symbols.hpp"

#include <cmath>

#include <gtest/gtest.h>

namespace {

int in_main_program(int x) {
  return x + 1;
}

TEST(Symbols, MainProgramFunctionRoundTrips) {
  auto where = mproc::platform::locate_code(reinterpret_cast<const void*>(&in_main_program));
  ASSERT_TRUE(where) << where.error().message();
  EXPECT_EQ(where->module, "");
  auto back = mproc::platform::resolve_code(*where);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, reinterpret_cast<const void*>(&in_main_program));
}

TEST(Symbols, SharedLibraryFunctionIsNamedByItsModule) {
  double (*fn)(double) = &std::cos;
  auto where = mproc::platform::locate_code(reinterpret_cast<const void*>(fn));
  ASSERT_TRUE(where);
  EXPECT_NE(where->module.find("libm"), std::string::npos) << where->module;
  auto back = mproc::platform::resolve_code(*where);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, reinterpret_cast<const void*>(fn));
}

TEST(Symbols, CorruptAddressesAreRefused) {
  int data = 0;
  EXPECT_FALSE(mproc::platform::locate_code(&data));  // the stack is no module's code
  auto missing = mproc::platform::resolve_code({"/no/such/module.so", 16});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  auto outside = mproc::platform::resolve_code({"", std::uint64_t{1} << 46});
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error(), std::errc::bad_address);
}

}  // namespace
