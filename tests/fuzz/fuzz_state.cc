// libFuzzer target: the records hubsync reads back from state_dir, which may
// be damaged or planted after a crash or a restore (keys, counters, the
// manifest cache, the pairing window, the highest term seen) and the key
// files keyimport reads.
// The first byte picks the record.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hubsync/admission.h"
#include "hubsync/keystore.h"
#include "hubsync/scanner.h"
#include "hubsync/state_store.h"
#include "hubsync/term.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  hubsync::MemoryStateStore store;
  switch (data[0] % 7) {
    case 0: {
      store.Put("keys/hub-b.key", in);
      auto keys = hubsync::KeyStore(&store).Load("hub-b");
      if (keys.ok() && (keys->empty() || keys->size() > 4096)) __builtin_trap();
      break;
    }
    case 1: {
      store.Put(hubsync::KeyStore::TxName("hub-b", 1), in);
      auto tx = hubsync::TxCounter::Open(&store, hubsync::KeyStore::TxName("hub-b", 1));
      if (tx.ok()) {
        auto a = tx->Next(), b = tx->Next();
        if (a.ok() && b.ok() && *b <= *a) __builtin_trap();  // counters only go up
      }
      break;
    }
    case 2: {
      if (in.size() > hubsync::StateStore::kMaxOverwriteBytes) break;
      store.Overwrite(hubsync::KeyStore::RxName("hub-b", 1), in);
      auto rx = hubsync::RxCounter::Open(&store, hubsync::KeyStore::RxName("hub-b", 1));
      if (rx.ok() && rx->Accept(rx->last()).ok()) __builtin_trap();  // a replay is refused
      break;
    }
    case 3: {
      store.Put("manifest.cache", in);
      hubsync::PathFilter filter;
      hubsync::Scanner scanner(nullptr, &filter, &store);  // LoadCache reads only the store
      scanner.LoadCache();
      break;
    }
    case 4:
      store.Put("pairing-window", in);
      hubsync::PairingWindowOpen(store, 1000, "boot");
      break;
    case 6:
      store.Put("term", in);
      hubsync::LoadClaim(store);
      break;
    case 5: {
      std::string maker;
      hubsync::KeyStore::Import(in, "home", "hub-b", &maker);
      break;
    }
  }
  return 0;
}
