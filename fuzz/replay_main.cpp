// Replays fuzz inputs without libFuzzer, so that a fuzz target's corpus runs as a regression test
// with any compiler (fmt's test/fuzzing/main.cc does the same). Each argument is a file, or a
// directory whose regular files are run in name order, each once, through LLVMFuzzerTestOneInput.
// A bug shows as the target's abort, a crash or a sanitizer report; the last "replay:" line names
// the input. Exits 1 if the arguments name no input at all (a misconfigured test must not pass).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a target, as with libFuzzer: weak, so it is null when the target does not define it.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const fs::path& arg) {
  if (!fs::is_directory(arg)) return {arg};
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(arg)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::ranges::sort(files);
  return files;
}

bool replay(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "replay: cannot open " << file << "\n";
    return false;
  }
  const std::vector<char> contents{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  // A heap block of exactly the input's size, as libFuzzer passes, so that ASan sees any overread.
  const auto data = std::make_unique<std::uint8_t[]>(contents.size());
  std::ranges::copy(contents, reinterpret_cast<char*>(data.get()));
  std::cerr << "replay: " << file.string() << " (" << contents.size() << " bytes)\n";
  LLVMFuzzerTestOneInput(data.get(), contents.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& file : inputs_of(argv[i])) {
      if (!replay(file)) return 1;
      ++count;
    }
  }
  if (count == 0) {
    std::cerr << "replay: no inputs (usage: " << argv[0] << " <file or directory>...)\n";
    return 1;
  }
  std::cerr << "replay: " << count << " inputs passed\n";
  return 0;
}
