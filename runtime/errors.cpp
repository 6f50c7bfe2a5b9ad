#include "mproc/errors.hpp"

namespace mproc {

RemoteError::RemoteError(std::string type_name, std::string message, std::string where)
    : Error(type_name + ": " + message + " (raised in " + where + ")"),
      info_(std::make_shared<const Info>(Info{std::move(type_name), std::move(message), std::move(where)})) {}

OSError::OSError(int errnum, const std::string& what)
    : OSError(std::error_code(errnum, std::system_category()), what) {}

OSError::OSError(std::error_code code, const std::string& what)
    : Error(what + ": " + code.message()), code_(code) {}

void throw_os_error(std::error_code code, const std::string& what) {
  if (code.category() == std::system_category()) {
    switch (code.value()) {
      case ENOENT:
        throw FileNotFoundError(code, what);
      case EEXIST:
        throw FileExistsError(code, what);
      case EACCES:
      case EPERM:
        throw PermissionError(code, what);
      default:
        break;
    }
  }
  throw OSError(code, what);
}

void throw_os_error(int errnum, const std::string& what) {
  throw_os_error(std::error_code(errnum, std::system_category()), what);
}

}  // namespace mproc
