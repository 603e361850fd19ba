// Content-defined chunking (chunker.h): cuts that depend only on content,
// so an edit moves only the chunks around it; bounded lists; a checker that
// refuses what does not describe the file.
#include "hubsync/chunker.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "test_util.h"

namespace hubsync {
namespace {

using testing::RandomBytesString;

std::set<std::string_view> Digests(const std::string& list) {
  std::set<std::string_view> out;
  for (const ChunkView& c : ChunkViews(list)) out.insert(c.digest);
  return out;
}

size_t Shared(const std::string& a, const std::string& b) {
  std::set<std::string_view> da = Digests(a);
  size_t n = 0;
  for (std::string_view d : Digests(b)) n += da.count(d);
  return n;
}

TEST(ChunkerTest, CutsDoNotDependOnHowTheStreamIsFed) {
  std::string data = RandomBytesString(3 << 20, 1);
  std::string whole = ChunkList(data);
  std::mt19937 rng(2);
  Chunker c(data.size());
  for (size_t at = 0; at < data.size();) {
    size_t n = std::min<size_t>(data.size() - at, rng() % 70000 + 1);
    c.Update(std::string_view(data).substr(at, n));
    at += n;
  }
  EXPECT_EQ(c.Finish(), whole);
  EXPECT_TRUE(CheckChunkList(whole, data.size()).ok());
}

TEST(ChunkerTest, ChunksStayWithinTheirBounds) {
  for (const std::string& data : {RandomBytesString(5 << 20, 3), std::string(5 << 20, '\0')}) {
    std::string list = ChunkList(data);
    ASSERT_TRUE(CheckChunkList(list, data.size()).ok());
    ChunkSizes sizes = ChunkSizesFor(data.size());
    std::vector<ChunkView> views = ChunkViews(list);
    uint64_t total = 0;
    for (size_t i = 0; i < views.size(); ++i) {
      EXPECT_LE(views[i].length, sizes.max);
      if (i + 1 < views.size()) {
        EXPECT_GE(views[i].length, sizes.min);
      }
      total += views[i].length;
    }
    EXPECT_EQ(total, data.size());
    if (data[0] == '\0' && data == std::string(data.size(), '\0')) {
      EXPECT_EQ(views.size(), (data.size() + sizes.max - 1) / sizes.max) << "no content to cut at";
    } else {
      // About the average: FastCDC's normalised chunking bunches lengths.
      double mean = static_cast<double>(data.size()) / views.size();
      EXPECT_GT(mean, sizes.avg * 0.5);
      EXPECT_LT(mean, sizes.avg * 2.0);
    }
  }
}

TEST(ChunkerTest, AnInsertionOrDeletionMovesOnlyTheChunksAroundIt) {
  std::string data = RandomBytesString(8 << 20, 4);
  std::string before = ChunkList(data);
  size_t n = ChunkViews(before).size();
  std::string inserted = data;
  inserted.insert(1000, std::string(100, 'x'));
  EXPECT_GE(Shared(before, ChunkList(inserted)), n - 2);
  std::string deleted = data;
  deleted.erase(4 << 20, 777);
  EXPECT_GE(Shared(before, ChunkList(deleted)), n - 3);
  // Fixed-size blocks would share nothing after the insertion point.
}

TEST(ChunkerTest, ListsThatDoNotDescribeTheFileAreRefused) {
  std::string list = ChunkList(RandomBytesString(2 << 20, 5));
  EXPECT_TRUE(CheckChunkList(list, 2 << 20).ok());
  EXPECT_TRUE(CheckChunkList("", 12345).ok()) << "no list: the file goes whole";
  EXPECT_FALSE(CheckChunkList(list, (2 << 20) + 1).ok()) << "lengths must add up";
  EXPECT_FALSE(CheckChunkList(list.substr(0, list.size() - 1), 2 << 20).ok()) << "partial record";
  std::string zero = list;
  zero[0] = zero[1] = zero[2] = zero[3] = 0;
  EXPECT_FALSE(CheckChunkList(zero, 2 << 20).ok()) << "an empty chunk";
  std::string many;
  for (uint32_t i = 0; i <= kMaxBlocks; ++i) {
    many += std::string("\x01\x00\x00\x00", 4);
    many += std::string(kBlockDigestBytes, 'd');
  }
  EXPECT_FALSE(CheckChunkList(many, kMaxBlocks + 1).ok()) << "too many";
}

}  // namespace
}  // namespace hubsync
