// Link implementations over SOCK_SEQPACKET: AF_UNIX and L2CAP LE CoC.
#include "hubsync/link.h"

#include <bluetooth/bluetooth.h>
#include <bluetooth/l2cap.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hubsync {
namespace {

constexpr size_t kUnixMtu = 672;
constexpr size_t kMaxRecord = 65535;

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  return a;
}

sockaddr_l2 L2capAddress(const bdaddr_t& addr, uint16_t psm) {
  sockaddr_l2 a{};
  a.l2_family = AF_BLUETOOTH;
  a.l2_psm = htobs(psm);
  a.l2_bdaddr = addr;
  a.l2_bdaddr_type = BDADDR_LE_PUBLIC;
  return a;
}

Status Err(const std::string& what) {
  return Status::Unavailable(what + ": " + std::strerror(errno));
}

// An AF_UNIX SOCK_SEQPACKET socket bound and listening at `path`, or
// connected to it.
Result<int> UnixSocket(const std::string& path, bool listen_there) {
  sockaddr_un a = UnixAddress(path);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Err("socket(AF_UNIX)");
  bool ok = listen_there ? bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                               listen(fd, 1) == 0
                         : connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (!ok) {
    Status st = Err((listen_there ? "bind " : "connect ") + path);
    close(fd);
    return st;
  }
  return fd;
}

struct Spec {
  bool unix_socket = false;
  std::string path;
  bdaddr_t addr{};
  uint16_t psm = 0;
};

Result<Spec> Parse(const std::string& s) {
  Spec spec;
  if (s.rfind("unix:", 0) == 0) {
    spec.unix_socket = true;
    spec.path = s.substr(5);
    if (spec.path.empty() || spec.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return Status::InvalidArgument("bridge.link: unix path empty or too long");
    }
    return spec;
  }
  if (s.rfind("l2cap:", 0) != 0) {
    return Status::InvalidArgument("bridge.link: must be unix:PATH or l2cap:BDADDR/PSM");
  }
  std::string rest = s.substr(6);
  size_t slash = rest.find('/');
  if (slash != 17) return Status::InvalidArgument("bridge.link: BDADDR must be AA:BB:CC:DD:EE:FF");
  unsigned b[6];
  if (std::sscanf(rest.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4],
                  &b[5]) != 6) {
    return Status::InvalidArgument("bridge.link: BDADDR must be AA:BB:CC:DD:EE:FF");
  }
  for (int i = 0; i < 6; ++i) spec.addr.b[5 - i] = static_cast<uint8_t>(b[i]);  // little-endian
  long psm = std::strtol(rest.c_str() + slash + 1, nullptr, 0);
  // LE dynamic PSMs are 0x80-0xff; fixed ones below are reserved.
  if (psm < 0x80 || psm > 0xff) return Status::InvalidArgument("bridge.link: PSM must be 128-255");
  spec.psm = static_cast<uint16_t>(psm);
  return spec;
}

class SeqpacketLink : public Link {
 public:
  SeqpacketLink(int fd, size_t mtu) : fd_(fd), mtu_(mtu) {}
  ~SeqpacketLink() override { close(fd_); }
  Status Send(std::string_view record) override {
    if (record.empty()) return Status::InvalidArgument("empty record");
    if (record.size() > mtu_) return Status::InvalidArgument("record larger than the MTU");
    while (true) {
      ssize_t n = send(fd_, record.data(), record.size(), MSG_NOSIGNAL);
      if (n == static_cast<ssize_t>(record.size())) return Status::Ok();
      if (n < 0 && errno == EINTR) continue;
      return Err("link send");
    }
  }
  Result<std::string> Receive(int timeout_ms) override {
    struct pollfd p = {fd_, POLLIN, 0};
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) return Err("link poll");
    if (rc <= 0) return std::string();
    std::string buf(kMaxRecord, '\0');
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return Err("link recv");
    if (n == 0) return Status::Unavailable("the peer closed the link");  // EOF
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  size_t mtu() const override { return mtu_; }

 private:
  int fd_;
  size_t mtu_;
};

// L2CAP: require an authenticated, encrypted link before any byte moves.
Status SecureL2cap(int fd) {
  struct bt_security sec = {};
  sec.level = BT_SECURITY_HIGH;
  if (setsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &sec, sizeof sec) != 0) {
    return Err("set BT_SECURITY high");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Link>> WrapL2cap(int fd) {
  struct bt_security sec = {};
  socklen_t len = sizeof sec;
  if (getsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &sec, &len) != 0 ||
      sec.level < BT_SECURITY_HIGH) {
    close(fd);
    return Status::Rejected("L2CAP link is not at security level HIGH");
  }
  uint16_t mtu = 0;
  len = sizeof mtu;
  if (getsockopt(fd, SOL_BLUETOOTH, BT_SNDMTU, &mtu, &len) != 0 || mtu < 23) {
    close(fd);
    return Status::Unavailable("cannot read the L2CAP MTU");
  }
  return std::unique_ptr<Link>(new SeqpacketLink(fd, mtu));
}

class SocketListener : public LinkListener {
 public:
  SocketListener(int fd, bool unix_socket, std::string path)
      : fd_(fd), unix_(unix_socket), path_(std::move(path)) {}
  ~SocketListener() override {
    close(fd_);
    if (unix_) unlink(path_.c_str());
  }
  Result<std::unique_ptr<Link>> Accept(int timeout_ms) override {
    struct pollfd p = {fd_, POLLIN, 0};
    int rc = poll(&p, 1, timeout_ms);
    if (rc <= 0) return Status::Unavailable("no peer yet");
    int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return Err("accept");
    if (unix_) return std::unique_ptr<Link>(new SeqpacketLink(fd, kUnixMtu));
    return WrapL2cap(fd);
  }

 private:
  int fd_;
  bool unix_;
  std::string path_;
};

}  // namespace

Status ValidateLinkSpec(const std::string& spec) { return Parse(spec).status(); }

Result<std::unique_ptr<LinkListener>> ListenLink(const std::string& s) {
  auto spec = Parse(s);
  if (!spec.ok()) return spec.status();
  if (spec->unix_socket) {
    unlink(spec->path.c_str());  // a stale socket from a previous run
    auto fd = UnixSocket(spec->path, /*listen=*/true);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<LinkListener>(new SocketListener(*fd, true, spec->path));
  }
  int fd = socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_CLOEXEC, BTPROTO_L2CAP);
  if (fd < 0) return Err("socket(AF_BLUETOOTH)");
  sockaddr_l2 a = L2capAddress(spec->addr, spec->psm);
  Status sec = SecureL2cap(fd);
  if (!sec.ok() || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1) != 0) {
    Status st = sec.ok() ? Err("bind l2cap") : sec;
    close(fd);
    return st;
  }
  return std::unique_ptr<LinkListener>(new SocketListener(fd, false, ""));
}

Result<std::unique_ptr<Link>> ConnectLink(const std::string& s) {
  auto spec = Parse(s);
  if (!spec.ok()) return spec.status();
  if (spec->unix_socket) {
    auto fd = UnixSocket(spec->path, /*listen=*/false);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<Link>(new SeqpacketLink(*fd, kUnixMtu));
  }
  int fd = socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_CLOEXEC, BTPROTO_L2CAP);
  if (fd < 0) return Err("socket(AF_BLUETOOTH)");
  Status sec = SecureL2cap(fd);
  if (!sec.ok()) {
    close(fd);
    return sec;
  }
  sockaddr_l2 local = L2capAddress(bdaddr_t{}, 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    Status st = Err("bind l2cap");
    close(fd);
    return st;
  }
  sockaddr_l2 a = L2capAddress(spec->addr, spec->psm);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    Status st = errno == EACCES ? Status::Rejected("peer not paired at security level HIGH")
                                : Err("connect l2cap");
    close(fd);
    return st;
  }
  return WrapL2cap(fd);
}

}  // namespace hubsync
