// The inode table and the hard-link tracker without a mount: plain fds on a temporary tree.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "env/env.h"
#include "fs/filesystem.h"
#include "index/index_lifecycle.h"
#include "index/index_reader.h"
#include "store/compactor.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::fs;
using dtkfs::testing::TempDir;

namespace {

int OpenRoot(const std::string& p) { return ::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); }

// What Filesystem::Lookup does, on the table alone: the inode for name in parent, one more ref.
Inode* LookUp(InodeTable& table, Inode& parent, const char* name) {
  int fd = ::openat(parent.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct stat st;
  REQUIRE(::fstat(fd, &st) == 0);
  const DirMount mount = S_ISDIR(st.st_mode) ? table.MountOf(MountIdOf(fd), parent) : DirMount{};
  std::lock_guard lock(table.mu());
  bool created;
  Inode* inode = table.FindOrCreateLocked(fd, st, mount, parent, name, &created);
  if (!created) ::close(fd);
  inode->refs++;
  return inode;
}

struct CountingListener : InodeTable::LinkListener {
  int pinned = 0, changed = 0;
  void OnPinned(const Inode&) override { ++pinned; }
  void OnLinksChanged() override { ++changed; }
};

}  // namespace

TEST_CASE("inode table: directory paths follow lookups, moves and removals", "[fs][table]") {
  TempDir dir;
  ::mkdir((dir / "a").c_str(), 0755);
  ::mkdir((dir / "a/b").c_str(), 0755);
  ::mkdir((dir / "c").c_str(), 0755);
  InodeTable table(OpenRoot(dir.path()), dir.path());

  Inode* a = LookUp(table, table.root(), "a");
  Inode* b = LookUp(table, *a, "b");
  Inode* c = LookUp(table, table.root(), "c");
  CHECK(table.DirPath(table.root()) == std::optional<std::string>(""));
  CHECK(table.DirPath(*b) == std::optional<std::string>("a/b"));
  CHECK(LookUp(table, table.root(), "a") == a);  // the same inode, one more reference

  table.MoveDir(*b, *c, "b2");
  CHECK(table.DirPath(*b) == std::optional<std::string>("c/b2"));
  table.DetachDir(*b);
  CHECK_FALSE(table.DirPath(*b).has_value());

  struct stat st;
  REQUIRE(::stat((dir / "a").c_str(), &st) == 0);
  CHECK(table.Find(st.st_dev, st.st_ino) == a);
  table.Forget(*a, 2);  // both lookups given back: gone
  CHECK(table.Find(st.st_dev, st.st_ino) == nullptr);
}

TEST_CASE("inode table: a child keeps its parent; the last forget frees both", "[fs][table]") {
  TempDir dir;
  ::mkdir((dir / "a").c_str(), 0755);
  std::ofstream(dir / "a/f") << "x";
  InodeTable table(OpenRoot(dir.path()), dir.path());
  Inode* a = LookUp(table, table.root(), "a");
  Inode* f = LookUp(table, *a, "f");
  struct stat sa, sf;
  REQUIRE(::stat((dir / "a").c_str(), &sa) == 0);
  REQUIRE(::stat((dir / "a/f").c_str(), &sf) == 0);
  table.Forget(*a, 1);  // the kernel forgets the directory; its child still names it
  CHECK(table.Find(sa.st_dev, sa.st_ino) == a);
  CHECK(f->links.size() == 1);
  table.Forget(*f, 1);
  CHECK(table.Find(sf.st_dev, sf.st_ino) == nullptr);
  CHECK(table.Find(sa.st_dev, sa.st_ino) == nullptr);
}

TEST_CASE("inode table: a file with two known names is pinned until one goes", "[fs][table]") {
  TempDir dir;
  std::ofstream(dir / "f") << "hello";
  REQUIRE(::link((dir / "f").c_str(), (dir / "g").c_str()) == 0);
  InodeTable table(OpenRoot(dir.path()), dir.path());
  CountingListener listener;
  table.SetLinkListener(&listener);
  struct stat st;
  REQUIRE(::stat((dir / "f").c_str(), &st) == 0);

  Inode* f = LookUp(table, table.root(), "f");
  CHECK(LookUp(table, table.root(), "g") == f);
  CHECK(f->links.size() == 2);
  CHECK(listener.pinned == 1);
  CHECK(listener.changed == 1);
  table.Forget(*f, 2);  // the kernel forgets it: the pin keeps every name known
  CHECK(table.Find(st.st_dev, st.st_ino) == f);
  table.MoveLink(*f, table.root(), "g", table.root(), "h");
  CHECK(InodeTable::HasLink(*f, table.root(), "h"));
  CHECK(listener.changed == 2);
  table.RemoveLink(*f, table.root(), "h");  // one name left: unpinned, and nobody holds it
  CHECK(table.Find(st.st_dev, st.st_ino) == nullptr);
}

TEST_CASE("link tracker: a hard-linked file met once knows every name from the index", "[fs]") {
  TempDir dir;
  const std::string src = dir / "src";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/a").c_str(), 0755);
  ::mkdir((src + "/b").c_str(), 0755);
  std::ofstream(src + "/a/f") << std::string(100, 'x');
  REQUIRE(::link((src + "/a/f").c_str(), (src + "/b/g").c_str()) == 0);
  const IndexTarget target{src, dir / "index"};
  auto scan = ScanTree(src, "", ScanOptions{});
  REQUIRE(scan.ok());
  REQUIRE(InstallScan(Env::Default(), target, *scan, 1).ok());
  auto base = IndexReader::Open(Env::Default(), target.index);
  REQUIRE(base.ok());
  REQUIRE((*base)->links().size() == 1);

  SizeStore store(*base);
  Compactor compactor(store, Env::Default(), target.index, src);
  Filesystem fs(OpenRoot(src), src, store, compactor, Options{});
  Inode* a = nullptr;
  fuse_entry_param e;
  REQUIRE(fs.Lookup(fs.table().root(), "a", &e) == 0);
  a = &fs.Get(e.ino);
  REQUIRE(fs.Lookup(*a, "f", &e) == 0);
  Inode& f = fs.Get(e.ino);
  // Both names, though only one was looked up, and the size the index counts for each.
  REQUIRE(f.links.size() == 2);
  std::set<std::string> names;
  for (const Link& l : f.links) names.insert(*fs.table().DirPath(*l.parent) + "/" + l.name);
  CHECK(names == std::set<std::string>{"a/f", "b/g"});
  CHECK(f.CountedSize() == 100);

  // The freeze writes the same table back: the claimed file, now pinned.
  Compactor::Frozen frozen = fs.FreezeForCompaction();
  CHECK(frozen.link_table == std::string((*base)->links().bytes()));
}
