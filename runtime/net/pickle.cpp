// The plain-data pickle codec (include/mproc/pickle.hpp). Opcodes and their arguments as
// CPython's Lib/pickle.py and Modules/_pickle.c define them (protocols 2 to 5).
#include "mproc/pickle.hpp"

#include <bit>
#include <cstring>
#include <string>

namespace mproc::pickle {

const char* Value::type_name() const noexcept {
  static constexpr const char* kNames[] = {"NoneType", "bool",  "int",  "int",   "float",
                                           "str",      "bytes", "list", "tuple", "dict"};
  return kNames[v.index()];
}

namespace detail {
void wrong_type(const Value& got, const char* wanted) {
  throw ValueError(std::string("a pickled ") + got.type_name() + " where " + wanted + " was expected");
}
}  // namespace detail

namespace {

constexpr std::size_t kMaxDepth = 1000;

// --- loads: a stack machine over shared nodes, so that the memo refers to the object a later
// opcode still fills (as Python's does); turned into plain Values at STOP.

struct Node;
using NodePtr = std::shared_ptr<Node>;
struct Node {
  enum Kind { scalar, list, tuple, dict } kind = scalar;
  Value scalar_value;          // scalar
  std::vector<NodePtr> items;  // list, tuple; dict: key, value, key, value, ...
};

[[noreturn]] void bad(const std::string& what) {
  throw DecodeError("pickle: " + what);
}

const char* opcode_name(std::uint8_t op) {
  switch (op) {
    case 'c':
      return "GLOBAL";
    case 0x93:
      return "STACK_GLOBAL";
    case 'R':
      return "REDUCE";
    case 'b':
      return "BUILD";
    case 'i':
      return "INST";
    case 'o':
      return "OBJ";
    case 0x81:
      return "NEWOBJ";
    case 0x92:
      return "NEWOBJ_EX";
    case 'P':
      return "PERSID";
    case 'Q':
      return "BINPERSID";
    case 0x82:
    case 0x83:
    case 0x84:
      return "EXT";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    default:
      return nullptr;
  }
}

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  // A pickle may make a node hold itself (l = [l]: APPEND of a memo reference): such a cycle of
  // shared pointers would never be freed, so every node lets go of its items at the end.
  ~Reader() {
    for (const auto& n : nodes_) n->items.clear();
  }

  Value run() {
    for (;;) {
      const std::uint8_t op = u8();
      switch (op) {
        case 0x80:
          (void)u8();
          break;  // PROTO
        case 0x95:
          (void)uint_le(8);
          break;  // FRAME: a hint only
        case '.':
          return finish();  // STOP
        case 'N':
          push_scalar(None{});
          break;
        case 0x88:
          push_scalar(true);
          break;  // NEWTRUE
        case 0x89:
          push_scalar(false);
          break;  // NEWFALSE
        case 'J':
          push_scalar(static_cast<std::int64_t>(static_cast<std::int32_t>(uint_le(4))));
          break;  // BININT
        case 'K':
          push_scalar(static_cast<std::int64_t>(u8()));
          break;  // BININT1
        case 'M':
          push_scalar(static_cast<std::int64_t>(uint_le(2)));
          break;  // BININT2
        case 0x8a:
          push_long(u8());
          break;      // LONG1
        case 0x8b: {  // LONG4
          const auto n = static_cast<std::int32_t>(uint_le(4));
          if (n < 0) bad("LONG4 with a negative length");
          push_long(static_cast<std::size_t>(n));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          std::uint64_t bits = 0;
          for (std::byte b : take(8)) bits = (bits << 8) | std::to_integer<std::uint64_t>(b);
          push_scalar(std::bit_cast<double>(bits));
          break;
        }
        case 0x8c:
          push_text(u8());
          break;  // SHORT_BINUNICODE
        case 'X':
          push_text(uint_le(4));
          break;  // BINUNICODE
        case 0x8d:
          push_text(uint_le(8));
          break;  // BINUNICODE8
        case 'C':
          push_bytes(u8());
          break;  // SHORT_BINBYTES
        case 'B':
          push_bytes(uint_le(4));
          break;  // BINBYTES
        case 0x8e:
        case 0x96:
          push_bytes(uint_le(8));
          break;  // BINBYTES8, BYTEARRAY8
        case ']':
          push(make(Node::list));
          break;  // EMPTY_LIST
        case ')':
          push(make(Node::tuple));
          break;  // EMPTY_TUPLE
        case '}':
          push(make(Node::dict));
          break;  // EMPTY_DICT
        case '(':
          marks_.push_back(stack_.size());
          break;     // MARK
        case 'a': {  // APPEND
          NodePtr item = pop();
          container(Node::list).items.push_back(std::move(item));
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto& list = container(Node::list).items;
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          NodePtr value = pop();
          NodePtr key = pop();
          auto& dict = container(Node::dict).items;
          dict.push_back(std::move(key));
          dict.push_back(std::move(value));
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2 != 0) bad("SETITEMS with an odd number of items");
          auto& dict = container(Node::dict).items;
          dict.insert(dict.end(), items.begin(), items.end());
          break;
        }
        case 't':
          push(make(Node::tuple, pop_mark()));
          break;  // TUPLE
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const std::size_t n = op - 0x84U;
          if (stack_.size() < n + floor()) bad("TUPLE" + std::to_string(n) + " on a short stack");
          std::vector<NodePtr> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(make(Node::tuple, std::move(items)));
          break;
        }
        case 0x94:
          memo_.push_back(top());
          break;  // MEMOIZE
        case 'q':
          put(u8());
          break;  // BINPUT
        case 'r':
          put(uint_le(4));
          break;  // LONG_BINPUT
        case 'h':
          get(u8());
          break;  // BINGET
        case 'j':
          get(uint_le(4));
          break;  // LONG_BINGET
        default: {
          const char* name = opcode_name(op);
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          bad(std::string("opcode ") + hex +
              (name != nullptr ? std::string(" (") + name + ")" : std::string()) +
              " is not allowed: only None, bool, int, float, str, bytes, list, tuple and dict are loaded");
        }
      }
    }
  }

 private:
  std::uint8_t u8() { return std::to_integer<std::uint8_t>(take(1)[0]); }
  std::uint64_t uint_le(std::size_t n) {
    std::uint64_t v = 0;
    const auto b = take(n);
    for (std::size_t i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(b[i]) << (8 * i);
    return v;
  }
  std::span<const std::byte> take(std::uint64_t n) {
    if (n > in_.size() - pos_)
      bad("truncated (" + std::to_string(n) + " bytes wanted, " + std::to_string(in_.size() - pos_) +
          " left)");
    auto s = in_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(NodePtr n) { stack_.push_back(std::move(n)); }
  NodePtr make(Node::Kind kind, std::vector<NodePtr> items = {}) {
    nodes_.push_back(std::make_shared<Node>(Node{kind, {}, std::move(items)}));
    return nodes_.back();
  }
  void push_scalar(Value v) { push(std::make_shared<Node>(Node{Node::scalar, std::move(v), {}})); }
  NodePtr pop() {
    if (stack_.size() <= floor()) bad("an opcode found the stack empty");
    NodePtr n = std::move(stack_.back());
    stack_.pop_back();
    return n;
  }
  const NodePtr& top() {
    if (stack_.size() <= floor()) bad("MEMOIZE on an empty stack");
    return stack_.back();
  }
  std::vector<NodePtr> pop_mark() {
    if (marks_.empty()) bad("no MARK for an opcode that needs one");
    const std::size_t at = marks_.back();
    marks_.pop_back();
    std::vector<NodePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(at), stack_.end());
    stack_.resize(at);
    return items;
  }
  Node& container(Node::Kind kind) {
    if (stack_.size() <= floor() || stack_.back()->kind != kind) {
      bad(kind == Node::list ? "APPEND to something not a list" : "SETITEM to something not a dict");
    }
    return *stack_.back();
  }
  void put(std::uint64_t index) {
    if (index > in_.size()) bad("a memo index past anything this pickle can hold");
    if (memo_.size() <= index) memo_.resize(static_cast<std::size_t>(index) + 1);
    memo_[static_cast<std::size_t>(index)] = top();
  }
  void get(std::uint64_t index) {
    if (index >= memo_.size() || !memo_[static_cast<std::size_t>(index)]) bad("a memo index never stored");
    push(memo_[static_cast<std::size_t>(index)]);
  }
  void push_long(std::size_t n) {
    const auto b = take(n);
    if (n <= 8) {
      std::uint64_t u = 0;
      for (std::size_t i = 0; i < n; ++i) u |= std::to_integer<std::uint64_t>(b[i]) << (8 * i);
      if (n > 0 && n < 8 && (std::to_integer<std::uint8_t>(b[n - 1]) & 0x80U) != 0)
        u |= ~std::uint64_t{0} << (8 * n);
      push_scalar(static_cast<std::int64_t>(u));
      return;
    }
    BigInt big;
    for (std::byte x : b) big.bytes.push_back(std::to_integer<std::uint8_t>(x));
    push_scalar(std::move(big));
  }
  void push_text(std::uint64_t n) {
    const auto b = take(n);
    push_scalar(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  void push_bytes(std::uint64_t n) {
    const auto b = take(n);
    push_scalar(Bytes{std::vector<std::byte>(b.begin(), b.end())});
  }

  Value finish() {
    if (stack_.size() != 1 || !marks_.empty())
      bad("STOP with " + std::to_string(stack_.size()) + " items on the stack");
    if (pos_ != in_.size()) bad("bytes after STOP");
    return convert(*stack_.back(), 0);
  }

  Value convert(const Node& n, std::size_t depth) {
    if (depth > kMaxDepth)
      bad("nested deeper than " + std::to_string(kMaxDepth) + " levels (or a recursive structure)");
    switch (n.kind) {
      case Node::scalar:
        return n.scalar_value;
      case Node::list: {
        List out;
        for (const auto& item : n.items) out.push_back(convert(*item, depth + 1));
        return Value(std::move(out));
      }
      case Node::tuple: {
        Tuple out;
        for (const auto& item : n.items) out.items.push_back(convert(*item, depth + 1));
        return Value(std::move(out));
      }
      case Node::dict: {
        Dict out;
        for (std::size_t i = 0; i + 1 < n.items.size(); i += 2) {
          out.items.emplace_back(convert(*n.items[i], depth + 1), convert(*n.items[i + 1], depth + 1));
        }
        return Value(std::move(out));
      }
    }
    bad("unknown node");
  }

  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  std::vector<NodePtr> stack_;
  std::vector<std::size_t> marks_;
  std::vector<NodePtr> memo_;
  std::vector<NodePtr> nodes_;  // every container made, to break cycles at the end
};

// --- dumps ----------------------------------------------------------------------------------

class Writer {
 public:
  std::vector<std::byte> out;
  void op(std::uint8_t b) { out.push_back(static_cast<std::byte>(b)); }
  void le(std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) op(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  }
  void sized(std::size_t n, std::uint8_t op1, std::uint8_t op4, std::uint8_t op8) {
    if (n < 256) {
      op(op1);
      op(static_cast<std::uint8_t>(n));
    } else if (n <= 0xffffffffULL) {
      op(op4);
      le(n, 4);
    } else {
      op(op8);
      le(n, 8);
    }
  }
  void write(const Value& v, std::size_t depth) {
    if (depth > kMaxDepth)
      throw ValueError("pickle: a value nested deeper than " + std::to_string(kMaxDepth) + " levels");
    std::visit([&](const auto& x) { write_one(x, depth); }, v.v);
  }
  void write_one(None, std::size_t) { op('N'); }
  void write_one(bool b, std::size_t) { op(b ? 0x88 : 0x89); }
  void write_one(std::int64_t i, std::size_t) {
    if (i >= 0 && i < 256) {
      op('K');
      op(static_cast<std::uint8_t>(i));
    } else if (i >= 0 && i < 65536) {
      op('M');
      le(static_cast<std::uint64_t>(i), 2);
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
      op('J');
      le(static_cast<std::uint32_t>(static_cast<std::int32_t>(i)), 4);
    } else {
      // LONG1: the fewest little-endian two's complement bytes that keep the sign.
      std::vector<std::uint8_t> b;
      auto u = static_cast<std::uint64_t>(i);
      for (int k = 0; k < 8; ++k) b.push_back(static_cast<std::uint8_t>(u >> (8 * k)));
      while (b.size() > 1 && ((b.back() == 0x00 && (b[b.size() - 2] & 0x80U) == 0) ||
                              (b.back() == 0xff && (b[b.size() - 2] & 0x80U) != 0))) {
        b.pop_back();
      }
      op(0x8a);
      op(static_cast<std::uint8_t>(b.size()));
      raw(b.data(), b.size());
    }
  }
  void write_one(const BigInt& big, std::size_t) {
    if (big.bytes.size() < 256) {
      op(0x8a);
      op(static_cast<std::uint8_t>(big.bytes.size()));
    } else {
      op(0x8b);
      le(big.bytes.size(), 4);
    }
    raw(big.bytes.data(), big.bytes.size());
  }
  void write_one(double d, std::size_t) {
    op('G');
    const auto bits = std::bit_cast<std::uint64_t>(d);
    for (int k = 7; k >= 0; --k) op(static_cast<std::uint8_t>(bits >> (8 * k)));
  }
  void write_one(const std::string& s, std::size_t) {
    sized(s.size(), 0x8c, 'X', 0x8d);
    raw(s.data(), s.size());
  }
  void write_one(const Bytes& b, std::size_t) {
    sized(b.data.size(), 'C', 'B', 0x8e);
    raw(b.data.data(), b.data.size());
  }
  void write_one(const List& l, std::size_t depth) {
    op(']');
    if (l.empty()) return;
    op('(');
    for (const Value& item : l) write(item, depth + 1);
    op('e');
  }
  void write_one(const Tuple& t, std::size_t depth) {
    if (t.items.empty()) {
      op(')');
      return;
    }
    if (t.items.size() <= 3) {
      for (const Value& item : t.items) write(item, depth + 1);
      op(static_cast<std::uint8_t>(0x84 + t.items.size()));
      return;
    }
    op('(');
    for (const Value& item : t.items) write(item, depth + 1);
    op('t');
  }
  void write_one(const Dict& d, std::size_t depth) {
    op('}');
    if (d.items.empty()) return;
    op('(');
    for (const auto& [k, v] : d.items) {
      write(k, depth + 1);
      write(v, depth + 1);
    }
    op('u');
  }
};

}  // namespace

Value loads(std::span<const std::byte> bytes) {
  return Reader(bytes).run();
}

std::vector<std::byte> dumps(const Value& value) {
  Writer w;
  w.op(0x80);
  w.op(4);
  w.write(value, 0);
  w.op('.');
  return std::move(w.out);
}

}  // namespace mproc::pickle
