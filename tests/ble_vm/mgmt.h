// A minimal client of the Linux Bluetooth management API (HCI_CHANNEL_CONTROL)
// for the VM test: what bluetoothd would do for a hub, reduced to the
// commands that set up two controllers and pair them. Test code only.
//
// One socket sees every controller's events. While a command waits for its
// reply, user-confirmation requests (LE Just Works) are accepted and
// authentication failures are recorded, so one thread can drive both sides
// of a pairing.
#ifndef HUBSYNC_TESTS_BLE_VM_MGMT_H_
#define HUBSYNC_TESTS_BLE_VM_MGMT_H_

#include <bluetooth/bluetooth.h>

#include <cstdint>
#include <memory>
#include <string>

#include "hubsync/status.h"

namespace hubsync {
namespace testing {

// Command and event codes (BlueZ doc/mgmt-api.txt).
enum MgmtOp : uint16_t {
  kReadInfo = 0x0004,
  kSetPowered = 0x0005,
  kSetConnectable = 0x0007,
  kSetBondable = 0x0009,
  kSetSsp = 0x000B,
  kSetLe = 0x000D,
  kSetIoCapability = 0x0018,
  kPairDevice = 0x0019,
  kUnpairDevice = 0x001B,
  kUserConfirmReply = 0x001C,
  kAddRemoteOob = 0x0021,
  kRemoveRemoteOob = 0x0022,
  kSetAdvertising = 0x0029,
  kSetSecureConnections = 0x002D,
  kReadLocalOobExt = 0x003B,
};
inline constexpr uint8_t kLePublic = 1;
inline constexpr uint8_t kNoInputNoOutput = 3;
inline constexpr uint8_t kMgmtAuthFailed = 0x05;

struct MgmtReply {
  uint8_t status = 0;   // MGMT_STATUS_*; 0 is success
  std::string params;   // return parameters
};

// What Read Local Out Of Band Extended Data gives for LE Secure Connections.
struct LeOobData {
  uint8_t confirm[16];
  uint8_t random[16];
};

class Mgmt {
 public:
  static Result<std::unique_ptr<Mgmt>> Open();
  ~Mgmt();

  // Sends a command to controller `index` and waits up to timeout_ms for its
  // Command Complete or Command Status. Unavailable on socket errors or
  // timeout; a command the kernel refused comes back with a non-zero status.
  Result<MgmtReply> Command(uint16_t index, uint16_t opcode, const std::string& params,
                            int timeout_ms = 30000);
  // The command must succeed; Rejected names the opcode and status otherwise.
  Status Must(uint16_t index, uint16_t opcode, const std::string& params);

  Result<bdaddr_t> Address(uint16_t index);
  // Powered, LE + BR/EDR with SSP and Secure Connections, bondable,
  // connectable, NoInputNoOutput; advertising when `advertise`.
  Status SetUpController(uint16_t index, bool advertise);
  Result<LeOobData> ReadLocalLeOob(uint16_t index);
  Status AddRemoteLeOob(uint16_t index, const bdaddr_t& peer, const LeOobData& d);
  // Forgets keys and OOB data for `peer` and disconnects it (no error if
  // there was nothing to forget).
  Status Forget(uint16_t index, const bdaddr_t& peer);
  // Pair Device (LE public) as NoInputNoOutput: the reply's status.
  Result<uint8_t> Pair(uint16_t index, const bdaddr_t& peer);

  int auth_failures() const { return auth_failures_; }

 private:
  explicit Mgmt(int fd) : fd_(fd) {}
  void OnEvent(uint16_t code, uint16_t index, const std::string& params);

  int fd_;
  int auth_failures_ = 0;
};

// Address parameters as the API lays them out: 6 bytes little-endian + type.
std::string AddrParam(const bdaddr_t& a, uint8_t type = kLePublic);
// "AA:BB:CC:DD:EE:FF".
std::string AddrString(const bdaddr_t& a);

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_BLE_VM_MGMT_H_
