// The engine's entry points for the Python module (module.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "simt.h"

namespace simt {

// A pointer argument's array: counters attribute every access to the argument it came from.
struct ArgRange {
  std::uintptr_t base;
  std::size_t bytes;
  int index;
};

struct GlobalSide {  // loads or stores
  std::uint64_t requests = 0, sectors = 0, min_sectors = 0, bytes = 0, unique_sectors = 0;
};
struct SharedSide {
  std::uint64_t requests = 0, wavefronts = 0, min_wavefronts = 0;
};
struct ArgCount {
  GlobalSide side[2];  // [0] loads, [1] stores
};

// What one launch did (docs/cuda.md, "Cost counters").
struct LaunchCount {
  std::string kernel;
  uint3 grid, block;
  std::size_t shared_mem = 0;
  bool cooperative = false;
  GlobalSide global[2];
  std::map<int, ArgCount> args;
  SharedSide shared[2];
  FlopCount flops{};
  std::uint64_t max_thread_flops = 0, syncthreads = 0, grid_syncs = 0;
};

const KernelInfo* find_kernel(const std::string& name);
std::vector<std::string> kernel_names();
void launch(const KernelInfo& k, const ArgVal* args, uint3 grid, uint3 block, std::size_t smem,
            bool cooperative, unsigned workers, const std::vector<ArgRange>& ranges);
void set_counting(bool on);
std::vector<LaunchCount> take_records();  // every launch counted since the last call
}  // namespace simt
