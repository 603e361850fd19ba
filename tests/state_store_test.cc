#include "hubsync/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <vector>

#include "hubsync/keystore.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::TempDir;

TEST(StateStoreTest, NamesAreOneOrTwoPlainComponents) {
  for (const char* ok : {"pairing-window", "keys/hub-b1.key", "counters/hub-b1.e3.rx", "manifest.cache"}) {
    EXPECT_TRUE(StateStore::ValidName(ok)) << ok;
  }
  for (const char* bad : {"", "lock", ".hidden", "keys/", "/keys/x", "keys/../x", "a/b/c", "keys/.x",
                          "keys//x", "sp ace", "new\nline", "keys/..", "ä"}) {
    EXPECT_FALSE(StateStore::ValidName(bad)) << bad;
  }
  MemoryStateStore m;
  TempDir posix_dir;  // the store in a subdirectory, so an escape lands in posix_dir
  testing::MkdirP(posix_dir.Sub("state"));
  auto p = NewPosixStateStore(posix_dir.Sub("state"));
  for (StateStore* s : {static_cast<StateStore*>(&m), p.get()}) {
    EXPECT_EQ(s->Put("../escape", "x").code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(s->Get("a/b/c").status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(s->Overwrite("lock", "x").code(), Status::Code::kInvalidArgument);
  }
  EXPECT_NE(access(posix_dir.Sub("escape").c_str(), F_OK), 0);
}

// The same contract on disk and in memory.
class BothStoresTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      store_ = NewPosixStateStore(dir_.path());
    } else {
      store_ = std::make_unique<MemoryStateStore>();
    }
  }
  TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(BothStoresTest, PutGetListRemove) {
  StateStore& s = *store_;
  EXPECT_EQ(s.Get("keys/a.key").status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(s.List("keys").empty());
  ASSERT_TRUE(s.Put("keys/b.key", "bee").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "ay").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "ay again").ok());
  ASSERT_TRUE(s.Put("top", "level").ok());
  EXPECT_EQ(*s.Get("keys/a.key"), "ay again");
  EXPECT_EQ(s.List("keys"), (std::vector<std::string>{"a.key", "b.key"}));
  ASSERT_TRUE(s.Remove("keys/a.key").ok());
  ASSERT_TRUE(s.Remove("keys/a.key").ok()) << "removing what is gone is fine";
  EXPECT_FALSE(s.Has("keys/a.key"));
  EXPECT_EQ(s.List("keys"), (std::vector<std::string>{"b.key"}));
  EXPECT_EQ(*s.Get("top"), "level");
}

TEST_P(BothStoresTest, OverwriteIsVisibleAtOnceAndPutReplacesIt) {
  StateStore& s = *store_;
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "12345678").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "12345678");
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "abc").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "abc") << "a shorter overwrite leaves no tail";
  ASSERT_TRUE(s.Flush("counters/x.rx").ok());
  ASSERT_TRUE(s.Put("counters/x.rx", "put").ok());
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "over").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "over") << "an overwrite after a put writes the new record";
  EXPECT_EQ(s.Overwrite("counters/x.rx", std::string(65, 'x')).code(),
            Status::Code::kInvalidArgument);
}

TEST_P(BothStoresTest, CountersSurviveReopeningAndRefuseReplays) {
  StateStore& s = *store_;
  {
    auto rx = RxCounter::Open(&s, KeyStore::RxName("hub-b", 1));
    ASSERT_TRUE(rx.ok());
    ASSERT_TRUE(rx->Accept(7).ok());
    EXPECT_EQ(rx->Accept(7).code(), Status::Code::kRejected);
    ASSERT_TRUE(rx->Sync().ok());
    auto tx = TxCounter::Open(&s, KeyStore::TxName("hub-b", 1));
    ASSERT_TRUE(tx.ok());
    EXPECT_EQ(*tx->Next(), 1u);
  }
  auto rx = RxCounter::Open(&s, KeyStore::RxName("hub-b", 1));
  ASSERT_TRUE(rx.ok());
  EXPECT_EQ(rx->last(), 7u);
  auto tx = TxCounter::Open(&s, KeyStore::TxName("hub-b", 1));
  ASSERT_TRUE(tx.ok());
  EXPECT_GT(*tx->Next(), 1u) << "a reopened sender never hands out a used counter";
  ASSERT_TRUE(s.Put(KeyStore::TxName("hub-b", 2), "garbage").ok());
  EXPECT_EQ(TxCounter::Open(&s, KeyStore::TxName("hub-b", 2)).status().code(),
            Status::Code::kCorruption);
  ASSERT_TRUE(s.Put(KeyStore::RxName("hub-b", 2), "short").ok());
  EXPECT_EQ(RxCounter::Open(&s, KeyStore::RxName("hub-b", 2)).status().code(),
            Status::Code::kCorruption);
}

INSTANTIATE_TEST_SUITE_P(PosixAndMemory, BothStoresTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

TEST(MemoryStateStoreTest, PowerLossKeepsOnlyWhatWasFlushed) {
  MemoryStateStore s;
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "1").ok());
  ASSERT_TRUE(s.Flush("counters/x.rx").ok());
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "2").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "k").ok());
  s.LosePower();
  EXPECT_EQ(*s.Get("counters/x.rx"), "1");
  EXPECT_EQ(*s.Get("keys/a.key"), "k");
}

TEST(PosixStateStoreTest, RecordsArePrivateAndSymlinksAreNeverFollowed) {
  TempDir dir, outside;
  auto s = NewPosixStateStore(dir.path());
  ASSERT_TRUE(s->Put("keys/a.key", "secret").ok());
  struct stat st;
  ASSERT_EQ(stat(dir.Sub("keys/a.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.Sub("keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A symlink planted in state_dir is neither read through nor written through.
  testing::WriteFile(outside.Sub("victim"), "victim");
  ASSERT_EQ(symlink(outside.Sub("victim").c_str(), dir.Sub("keys/b.key").c_str()), 0);
  EXPECT_FALSE(s->Get("keys/b.key").ok());
  EXPECT_FALSE(s->Overwrite("keys/b.key", "x").ok());
  ASSERT_EQ(symlink(outside.Sub("victim").c_str(), dir.Sub("keys/c.key").c_str()), 0);
  ASSERT_TRUE(s->Put("keys/c.key", "replaced").ok());
  EXPECT_EQ(testing::ReadFile(outside.Sub("victim")), "victim");
  EXPECT_EQ(*s->Get("keys/c.key"), "replaced");
  EXPECT_EQ(s->List("keys"), (std::vector<std::string>{"a.key", "c.key"})) << "links are not records";
}

// A daemon and a command (keygen, unpair) change one key record at once:
// Update is a read-modify-write no other process's Update can interleave
// with, so no change is lost.
TEST(PosixStateStoreTest, UpdatesFromSeveralProcessesAreNeverLost) {
  TempDir dir;
  constexpr int kProcs = 4, kEach = 150;
  auto bump = [](StateStore* s) {
    return s->Update("counters/shared", [](const Result<std::string>& old)
                                            -> Result<std::optional<std::string>> {
      int n = old.ok() ? std::atoi(old->c_str()) : 0;
      return std::optional<std::string>(std::to_string(n + 1));
    });
  };
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = NewPosixStateStore(dir.path());
      for (int i = 0; i < kEach; ++i) {
        if (!bump(s.get()).ok()) _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(*NewPosixStateStore(dir.path())->Get("counters/shared"), std::to_string(kProcs * kEach));
  // A change that fails leaves the record as it was; nullopt removes it.
  auto s = NewPosixStateStore(dir.path());
  EXPECT_EQ(s->Update("counters/shared", [](const Result<std::string>&)
                                             -> Result<std::optional<std::string>> {
              return Status::Aborted("no");
            }).code(), Status::Code::kAborted);
  EXPECT_TRUE(s->Has("counters/shared"));
  ASSERT_TRUE(s->Update("counters/shared", [](const Result<std::string>&)
                                               -> Result<std::optional<std::string>> {
                return std::optional<std::string>();
              }).ok());
  EXPECT_FALSE(s->Has("counters/shared"));
}

TEST(KeyStoreTest, KeygenAndKeyimportChooseEpochsUnderTheUpdateLock) {
  MemoryStateStore store;
  KeyStore keys(&store);
  Key k{};
  std::vector<uint32_t> exported;
  auto record = [&](const KeyEntry& e) {
    exported.push_back(e.epoch);
    return Status::Ok();
  };
  EXPECT_EQ(keys.PutNext("hub-b", k, record)->epoch, 1u);
  EXPECT_EQ(keys.PutNext("hub-b", k, record)->epoch, 2u);
  EXPECT_EQ(exported, (std::vector<uint32_t>{1, 2}));
  // A failed export stores nothing.
  auto failed = keys.PutNext("hub-b", k, [](const KeyEntry&) { return Status::IoError("disk full"); });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(keys.Load("hub-b")->back().epoch, 2u);
  KeyEntry old;
  old.epoch = 2;
  EXPECT_EQ(keys.PutNewer("hub-b", old).message(), "key epoch 2 is not newer than the stored epoch 2");
  old.epoch = 3;
  EXPECT_TRUE(keys.PutNewer("hub-b", old).ok());
  EXPECT_EQ(keys.Load("hub-b")->size(), 2u) << "two epochs are kept";
  ASSERT_TRUE(keys.Remove("hub-b").ok());
  EXPECT_EQ(keys.Load("hub-b").status().code(), Status::Code::kNotFound);
  // A damaged record is not silently replaced by keyimport or keygen.
  ASSERT_TRUE(store.Put("keys/hub-b.key", "garbage").ok());
  EXPECT_EQ(keys.PutNewer("hub-b", old).code(), Status::Code::kCorruption);
  EXPECT_EQ(keys.PutNext("hub-b", k, record).status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace hubsync
