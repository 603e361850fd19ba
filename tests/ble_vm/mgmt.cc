#include "mgmt.h"

#include <bluetooth/hci.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace hubsync {
namespace testing {
namespace {

constexpr uint16_t kEvCommandComplete = 0x0001;
constexpr uint16_t kEvCommandStatus = 0x0002;
constexpr uint16_t kEvUserConfirmRequest = 0x000F;
constexpr uint16_t kEvAuthFailed = 0x0011;

// EIR/AD types in the LE OOB block.
constexpr uint8_t kEirLeScConfirm = 0x22;
constexpr uint8_t kEirLeScRandom = 0x23;

uint16_t Le16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}
void PutLe16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>(v >> 8));
}
std::string Byte(uint8_t b) { return std::string(1, static_cast<char>(b)); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string AddrParam(const bdaddr_t& a, uint8_t type) {
  return std::string(reinterpret_cast<const char*>(a.b), 6) + Byte(type);
}

std::string AddrString(const bdaddr_t& a) {
  char s[18];
  std::snprintf(s, sizeof s, "%02X:%02X:%02X:%02X:%02X:%02X", a.b[5], a.b[4], a.b[3], a.b[2],
                a.b[1], a.b[0]);
  return s;
}

Result<std::unique_ptr<Mgmt>> Mgmt::Open() {
  int fd = socket(PF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, BTPROTO_HCI);
  if (fd < 0) return Status::Unavailable(std::string("mgmt socket: ") + std::strerror(errno));
  sockaddr_hci a{};
  a.hci_family = AF_BLUETOOTH;
  a.hci_dev = HCI_DEV_NONE;
  a.hci_channel = HCI_CHANNEL_CONTROL;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    Status s = Status::Unavailable(std::string("mgmt bind: ") + std::strerror(errno));
    close(fd);
    return s;
  }
  return std::unique_ptr<Mgmt>(new Mgmt(fd));
}

Mgmt::~Mgmt() { close(fd_); }

void Mgmt::OnEvent(uint16_t code, uint16_t index, const std::string& params) {
  if (code == kEvUserConfirmRequest && params.size() >= 7) {
    // Just Works asks the responder to confirm; a hub without a screen says yes.
    std::string reply = params.substr(0, 7);
    std::string msg;
    PutLe16(&msg, kUserConfirmReply);
    PutLe16(&msg, index);
    PutLe16(&msg, static_cast<uint16_t>(reply.size()));
    msg += reply;
    if (write(fd_, msg.data(), msg.size()) < 0) std::perror("mgmt user confirm reply");
  } else if (code == kEvAuthFailed) {
    ++auth_failures_;
  }
}

Result<MgmtReply> Mgmt::Command(uint16_t index, uint16_t opcode, const std::string& params,
                                int timeout_ms) {
  std::string msg;
  PutLe16(&msg, opcode);
  PutLe16(&msg, index);
  PutLe16(&msg, static_cast<uint16_t>(params.size()));
  msg += params;
  if (write(fd_, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) {
    return Status::Unavailable(std::string("mgmt write: ") + std::strerror(errno));
  }
  int64_t deadline = NowMs() + timeout_ms;
  char buf[4096];
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return Status::Unavailable("mgmt: no reply to opcode " + std::to_string(opcode));
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 6) {
      if (n < 0 && errno == EINTR) continue;
      return Status::Unavailable("mgmt read failed");
    }
    uint16_t code = Le16(buf), ev_index = Le16(buf + 2), len = Le16(buf + 4);
    if (static_cast<size_t>(n) < 6u + len) return Status::Corruption("mgmt: short event");
    std::string ev(buf + 6, len);
    if ((code == kEvCommandComplete || code == kEvCommandStatus) && ev.size() >= 3 &&
        Le16(ev.data()) == opcode && ev_index == index) {
      MgmtReply r;
      r.status = static_cast<uint8_t>(ev[2]);
      r.params = ev.substr(3);
      return r;
    }
    OnEvent(code, ev_index, ev);
  }
}

Status Mgmt::Must(uint16_t index, uint16_t opcode, const std::string& params) {
  auto r = Command(index, opcode, params);
  if (!r.ok()) return r.status();
  if (r->status != 0) {
    char what[64];
    std::snprintf(what, sizeof what, "mgmt opcode 0x%04x on hci%u: status 0x%02x", opcode, index,
                  r->status);
    return Status::Rejected(what);
  }
  return Status::Ok();
}

Result<bdaddr_t> Mgmt::Address(uint16_t index) {
  auto r = Command(index, kReadInfo, "");
  if (!r.ok()) return r.status();
  if (r->status != 0 || r->params.size() < 6) return Status::Rejected("read controller info");
  bdaddr_t a;
  std::memcpy(a.b, r->params.data(), 6);
  return a;
}

Status Mgmt::SetUpController(uint16_t index, bool advertise) {
  const std::string on = Byte(1);
  for (uint16_t op : {kSetSsp, kSetLe, kSetSecureConnections, kSetBondable, kSetConnectable}) {
    Status s = Must(index, op, on);
    if (!s.ok()) return s;
  }
  Status s = Must(index, kSetIoCapability, Byte(kNoInputNoOutput));
  if (s.ok()) s = Must(index, kSetPowered, on);
  if (s.ok() && advertise) s = Must(index, kSetAdvertising, on);
  return s;
}

Result<LeOobData> Mgmt::ReadLocalLeOob(uint16_t index) {
  auto r = Command(index, kReadLocalOobExt, Byte(0x06));  // LE public | random
  if (!r.ok()) return r.status();
  if (r->status != 0 || r->params.size() < 3) return Status::Rejected("read local OOB data");
  std::string eir = r->params.substr(3, Le16(r->params.data() + 1));
  LeOobData d{};
  int found = 0;
  for (size_t i = 0; i + 1 < eir.size();) {
    size_t len = static_cast<uint8_t>(eir[i]);
    if (len == 0 || i + 1 + len > eir.size()) break;
    uint8_t type = static_cast<uint8_t>(eir[i + 1]);
    if (len == 17 && (type == kEirLeScConfirm || type == kEirLeScRandom)) {
      std::memcpy(type == kEirLeScConfirm ? d.confirm : d.random, eir.data() + i + 2, 16);
      ++found;
    }
    i += 1 + len;
  }
  if (found != 2) return Status::Rejected("no LE Secure Connections OOB values (SC off?)");
  return d;
}

Status Mgmt::AddRemoteLeOob(uint16_t index, const bdaddr_t& peer, const LeOobData& d) {
  // P-192 values are unused for LE and must be zero.
  std::string params = AddrParam(peer) + std::string(32, '\0') +
                       std::string(reinterpret_cast<const char*>(d.confirm), 16) +
                       std::string(reinterpret_cast<const char*>(d.random), 16);
  return Must(index, kAddRemoteOob, params);
}

Status Mgmt::Forget(uint16_t index, const bdaddr_t& peer) {
  auto r = Command(index, kUnpairDevice, AddrParam(peer) + Byte(1));
  if (!r.ok()) return r.status();
  constexpr uint8_t kNotPaired = 0x06;
  if (r->status != 0 && r->status != kNotPaired) return Status::Rejected("unpair device");
  bdaddr_t any{};
  return Must(index, kRemoveRemoteOob, AddrParam(any, 0));
}

Result<uint8_t> Mgmt::Pair(uint16_t index, const bdaddr_t& peer) {
  auto r = Command(index, kPairDevice, AddrParam(peer) + Byte(kNoInputNoOutput), 60000);
  if (!r.ok()) return r.status();
  return r->status;
}

}  // namespace testing
}  // namespace hubsync
