// ScanIndex: a source's index made the way a first mount makes it (scan, install), opened.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "env/env.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "index/index_reader.h"
#include "scan/scanner.h"

namespace dtkfs::testing {

inline std::shared_ptr<const IndexReader> ScanIndex(const std::string& src,
                                                    const std::string& index) {
  const IndexTarget target{src, index};
  auto scan = ScanTree(src, "", ScanOptions{});
  REQUIRE(scan.ok());
  REQUIRE(InstallScan(Env::Default(), target, *scan, 1).ok());
  auto base = IndexReader::Open(Env::Default(), target.index);
  REQUIRE(base.ok());
  return *base;
}

}  // namespace dtkfs::testing
