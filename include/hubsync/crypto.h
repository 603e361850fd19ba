// Cryptographic primitives hubsync needs, implemented by the Crypto++ adapter
// (src/crypto.cc, the only file that includes Crypto++).
//
// Thread rule: an AesGcm or Sha256 object is used by one thread at a time.
// Nothing here throws; Crypto++ exceptions become Status.
#ifndef HUBSYNC_CRYPTO_H_
#define HUBSYNC_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "hubsync/status.h"

namespace hubsync {

using Digest = std::array<uint8_t, 32>;
using Key = std::array<uint8_t, 32>;
inline constexpr size_t kNonceBytes = 12;
inline constexpr size_t kTagBytes = 16;

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  Digest Final();  // resets the hasher

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest Sha256Of(std::string_view data);
std::string ToHex(const uint8_t* data, size_t n);
inline std::string ToHex(const Digest& d) { return ToHex(d.data(), d.size()); }
bool FromHex(std::string_view hex, uint8_t* out, size_t n);

// Fills `out` from the operating system's CSPRNG.
Status RandomBytes(uint8_t* out, size_t n);

// AES-256-GCM with a 12-byte nonce and a 16-byte tag appended to the
// ciphertext. The key schedule is computed once per object.
class AesGcm {
 public:
  explicit AesGcm(const Key& key);
  ~AesGcm();
  AesGcm(const AesGcm&) = delete;
  AesGcm& operator=(const AesGcm&) = delete;

  // Appends ciphertext||tag of `plain` to `*out`.
  Status Seal(const uint8_t nonce[kNonceBytes], std::string_view ad, std::string_view plain,
              std::string* out);
  // Writes the plaintext of `sealed` (ciphertext||tag) to `*out`, or returns
  // Corruption when the tag does not verify; `*out` is then unspecified.
  Status Open(const uint8_t nonce[kNonceBytes], std::string_view ad, std::string_view sealed,
              std::string* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- key agreement (SPEC 6) -------------------------------------------------

using X25519Public = std::array<uint8_t, 32>;
struct X25519KeyPair {
  Key secret{};  // never leaves state_dir
  X25519Public pub{};
};

Result<X25519KeyPair> GenerateX25519();
// The raw shared secret with a peer's public key. Rejected for invalid or
// low-order public keys (which would give an all-zero secret).
Result<Key> X25519Agree(const Key& secret, const X25519Public& peer);
// HKDF-SHA256 (RFC 5869) to 32 bytes.
Key HkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info);

// The per-backup key both sides derive after the out-of-band exchange: HKDF
// over the shared secret, salted with both public keys (backup's first),
// with home and backup id in the info, so a key is bound to one pair.
Key DerivePairKey(const Key& shared, const X25519Public& backup_pub,
                  const X25519Public& primary_pub, const std::string& home,
                  const std::string& backup);

}  // namespace hubsync

#endif  // HUBSYNC_CRYPTO_H_
