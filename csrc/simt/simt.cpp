// The SIMT engine: blocks on OS threads, CUDA threads as ucontext fibers, block and grid
// barriers, and the kernel registry. See simt.h for the model.
#include "simt.h"

#include <ucontext.h>

#include <algorithm>
#include <array>
#include <unordered_map>
#include <unordered_set>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "simt_engine.h"

namespace simt {

thread_local ThreadState* t_thread = nullptr;
thread_local BlockState* t_block = nullptr;

// ---- counters ---------------------------------------------------------------------------------
bool g_counting = false;
thread_local FlopCount* t_flops = nullptr;
thread_local std::vector<Access>* t_log = nullptr;
thread_local const std::vector<ArgRange>* t_ranges = nullptr;

void log_access(const void* p, unsigned size, bool store, bool shared, int arg) {
  if (!t_log) return;
  t_log->push_back(Access{reinterpret_cast<std::uintptr_t>(p), __builtin_return_address(0), arg,
                          (std::uint8_t)size, (std::uint8_t)store, (std::uint8_t)shared});
}

int arg_of(const void* p) {
  if (!t_ranges) return -1;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  int inside = -1;
  for (const ArgRange& r : *t_ranges) {
    if (r.base == a) return r.index;  // the kernel parameter itself
    if (inside < 0 && a >= r.base && a < r.base + r.bytes) inside = r.index;
  }
  return inside;
}

std::mutex g_records_mu;
std::vector<LaunchCount> g_records;

void set_counting(bool on) { g_counting = on; }

std::vector<LaunchCount> take_records() {
  std::lock_guard<std::mutex> lk(g_records_mu);
  std::vector<LaunchCount> out;
  out.swap(g_records);
  return out;
}

namespace {

// The per-block tally: logged accesses grouped into warp requests (simt_count.h).
struct Tally {
  GlobalSide g[2];
  std::map<int, ArgCount> args;
  std::unordered_set<std::uint64_t> uniq[2];
  std::map<int, std::array<std::unordered_set<std::uint64_t>, 2>> arg_uniq;
  SharedSide s[2];

  void global_request(const Access* const* a, unsigned n) {
    std::uint64_t sec[96];
    unsigned ns = 0;
    std::pair<std::uintptr_t, std::uintptr_t> iv[32];
    for (unsigned i = 0; i < n; ++i) {
      iv[i] = {a[i]->addr, a[i]->addr + a[i]->size};
      for (std::uintptr_t q = a[i]->addr >> 5; q <= (a[i]->addr + a[i]->size - 1) >> 5; ++q)
        sec[ns++] = q;
    }
    std::sort(sec, sec + ns);
    ns = (unsigned)(std::unique(sec, sec + ns) - sec);
    std::sort(iv, iv + n);
    std::uint64_t bytes = 0;
    std::uintptr_t lo = iv[0].first, hi = iv[0].second;
    for (unsigned i = 1; i < n; ++i) {
      if (iv[i].first > hi) {
        bytes += hi - lo;
        lo = iv[i].first;
      }
      if (iv[i].second > hi) hi = iv[i].second;
    }
    bytes += hi - lo;
    int st = a[0]->store;
    std::uint64_t min_sec = (bytes + 31) / 32;
    GlobalSide* sides[2] = {&g[st], nullptr};
    ArgCount* ac = nullptr;
    if (a[0]->arg >= 0) {
      ac = &args[a[0]->arg];
      sides[1] = &ac->side[st];
    }
    for (GlobalSide* gs : sides) {
      if (!gs) continue;
      gs->requests += 1;
      gs->sectors += ns;
      gs->min_sectors += min_sec;
      gs->bytes += bytes;
    }
    for (unsigned i = 0; i < ns; ++i) {
      uniq[st].insert(sec[i]);
      if (ac) arg_uniq[a[0]->arg][st].insert(sec[i]);
    }
  }

  void shared_request(const Access* const* a, unsigned n) {
    std::uint64_t w[128];
    unsigned nw = 0;
    for (unsigned i = 0; i < n; ++i)
      for (std::uintptr_t q = a[i]->addr >> 2; q <= (a[i]->addr + a[i]->size - 1) >> 2; ++q)
        w[nw++] = q;
    std::sort(w, w + nw);
    nw = (unsigned)(std::unique(w, w + nw) - w);
    unsigned per_bank[32] = {0};
    unsigned wave = 0;
    for (unsigned i = 0; i < nw; ++i) wave = std::max(wave, ++per_bank[w[i] % 32]);
    SharedSide& ss = s[a[0]->store];
    ss.requests += 1;
    ss.wavefronts += wave;
    ss.min_wavefronts += (nw + 31) / 32;
  }

  void request(const Access* const* a, unsigned n) {
    if (a[0]->shared) shared_request(a, n);
    else global_request(a, n);
  }

  // One warp's logs since the last barrier. Fast path: every lane ran the same sequence of
  // sites (no divergence), so the i-th entries form the i-th request. Otherwise the k-th
  // execution of each site by each lane forms that site's k-th request.
  void warp(std::vector<Access>* const* logs, unsigned lanes) {
    std::size_t len = logs[0]->size();
    bool same = true;
    for (unsigned l = 1; l < lanes && same; ++l) {
      if (logs[l]->size() != len) {
        same = false;
        break;
      }
      for (std::size_t i = 0; i < len; ++i)
        if ((*logs[l])[i].site != (*logs[0])[i].site) {
          same = false;
          break;
        }
    }
    const Access* req[32];
    if (same) {
      for (std::size_t i = 0; i < len; ++i) {
        for (unsigned l = 0; l < lanes; ++l) req[l] = &(*logs[l])[i];
        request(req, lanes);
      }
      return;
    }
    std::map<std::pair<const void*, std::size_t>, std::vector<const Access*>> groups;
    for (unsigned l = 0; l < lanes; ++l) {
      std::unordered_map<const void*, std::size_t> occ;
      for (const Access& e : *logs[l]) groups[{e.site, occ[e.site]++}].push_back(&e);
    }
    for (auto& kv : groups) request(kv.second.data(), (unsigned)kv.second.size());
  }
};

}  // namespace


std::map<std::string, KernelInfo>& registry() {
  static std::map<std::string, KernelInfo> r;
  return r;
}

void register_kernel(const KernelInfo& k) { registry()[k.name] = k; }

const KernelInfo* find_kernel(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> out;
  for (auto& kv : registry()) out.push_back(kv.first);
  return out;
}

namespace {

constexpr std::size_t kStack = 256 * 1024;  // per fiber; kernels keep small frames

enum FiberWait { RUNNING, AT_SYNC, AT_GRID, DONE };

// Fiber stacks are reused across launches: a free list shared by all OS threads.
std::mutex g_stack_mu;
std::vector<char*> g_stacks;

char* get_stack() {
  std::lock_guard<std::mutex> lk(g_stack_mu);
  if (!g_stacks.empty()) {
    char* s = g_stacks.back();
    g_stacks.pop_back();
    return s;
  }
  char* s = static_cast<char*>(std::malloc(kStack));
  if (!s) throw std::runtime_error("SIMT: out of memory for fiber stacks");
  return s;
}
void put_stacks(std::vector<char*>& v) {
  std::lock_guard<std::mutex> lk(g_stack_mu);
  for (char* s : v) g_stacks.push_back(s);
  v.clear();
}

// A barrier across the OS threads of a cooperative launch; broken (with a message) when a block
// fails or exits while others wait, so that no thread hangs.
struct GridBarrier {
  std::mutex mu;
  std::condition_variable cv;
  unsigned n = 0, arrived = 0, exited = 0;
  unsigned long long gen = 0;
  bool broken = false;
  std::string why;

  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    if (broken) throw std::runtime_error(why);
    if (exited) {
      fail_locked("grid barrier reached after a block had exited (every block must reach "
                  "every LS_GRID_SYNC)");
      throw std::runtime_error(why);
    }
    unsigned long long g = gen;
    if (++arrived == n) {
      arrived = 0;
      ++gen;
      cv.notify_all();
      return;
    }
    cv.wait(lk, [&] { return gen != g || broken; });
    if (gen == g) throw std::runtime_error(why);
  }
  void exit_block() {
    std::lock_guard<std::mutex> lk(mu);
    ++exited;
    if (arrived) fail_locked("a block exited while others wait at a grid barrier");
  }
  void fail(const std::string& w) {
    std::lock_guard<std::mutex> lk(mu);
    fail_locked(w);
  }
  void fail_locked(const std::string& w) {
    if (!broken) {
      broken = true;
      why = w;
    }
    cv.notify_all();
  }
};

struct Launch {
  const KernelInfo* k;
  const ArgVal* args;
  uint3 grid, block;
  std::size_t smem;
  bool cooperative;
  GridBarrier* gb;
  const std::vector<ArgRange>* ranges;
  std::mutex* count_mu;  // guards `count` and `uniq` while blocks merge their tallies
  LaunchCount* count;    // nullptr when not counting
  std::unordered_set<std::uint64_t>* uniq;                                   // [2]
  std::map<int, std::array<std::unordered_set<std::uint64_t>, 2>>* arg_uniq;
};

struct FiberRec {
  ucontext_t ctx;
  ThreadState ts;
  FiberWait wait;
  char* stack;
  std::vector<Access> log;
  FlopCount flops;
};

// Per OS thread: the scheduler context and the fiber being run.
thread_local ucontext_t* t_sched = nullptr;
thread_local FiberRec* t_fiber = nullptr;
thread_local const Launch* t_launch = nullptr;

void fiber_main() {
  t_launch->k->invoke(t_launch->k->fn, t_launch->args);
  t_fiber->wait = DONE;  // returning resumes uc_link, the scheduler
}

void yield_with(FiberWait w) {
  if (!t_fiber) throw std::runtime_error("SIMT: barrier outside a kernel");
  t_fiber->wait = w;
  swapcontext(&t_fiber->ctx, t_sched);
}

std::string dim_str(const uint3& d) {
  return "(" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + ")";
}

// Run one block to completion on the calling OS thread.
void run_block(const Launch& L, uint3 bid, std::vector<FiberRec>& fibers,
               std::vector<char*>& stacks, std::vector<unsigned char>& smem) {
  const unsigned nt = L.block.x * L.block.y * L.block.z;
  BlockState bs{bid, L.block, L.grid, nullptr};
  if (L.smem) {
    smem.assign(L.smem, 0xFF);  // uninitialized shared memory reads as NaN, never as zeros
    bs.dyn_smem = smem.data();
  }
  ucontext_t sched;
  t_sched = &sched;
  t_block = &bs;
  t_launch = &L;
  fibers.resize(nt);
  while (stacks.size() < nt) stacks.push_back(get_stack());
  for (unsigned i = 0; i < nt; ++i) {
    FiberRec& f = fibers[i];
    f.ts.tid = uint3{i % L.block.x, (i / L.block.x) % L.block.y, i / (L.block.x * L.block.y)};
    f.wait = RUNNING;
    f.stack = stacks[i];
    f.log.clear();
    f.flops = FlopCount{};
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
  const bool counting = L.count != nullptr;
  Tally tally;
  std::uint64_t syncs = 0;
  std::vector<std::vector<Access>*> logs(nt);
  for (unsigned i = 0; i < nt; ++i) logs[i] = &fibers[i].log;
  auto flush = [&] {  // group this segment's accesses into warp requests
    for (unsigned w0 = 0; w0 < nt; w0 += 32) tally.warp(&logs[w0], std::min(32u, nt - w0));
    for (unsigned i = 0; i < nt; ++i) fibers[i].log.clear();
  };
  unsigned alive = nt;
  while (alive) {
    unsigned n_sync = 0, n_grid = 0;
    alive = 0;
    for (unsigned i = 0; i < nt; ++i) {
      FiberRec& f = fibers[i];
      if (f.wait == DONE) continue;
      f.wait = RUNNING;
      t_fiber = &f;
      t_thread = &f.ts;
      if (counting) {
        t_flops = &f.flops;
        t_log = &f.log;
      }
      swapcontext(&sched, &f.ctx);
      t_fiber = nullptr;
      t_thread = nullptr;
      t_flops = nullptr;
      t_log = nullptr;
      if (f.wait == AT_SYNC) ++n_sync, ++alive;
      else if (f.wait == AT_GRID) ++n_grid, ++alive;
    }
    if (counting) flush();
    if (!alive) break;
    std::string where = "block " + dim_str(bid) + " of " + L.k->name + ": ";
    if (alive != nt)
      throw std::runtime_error(where + std::to_string(alive) + " of " + std::to_string(nt) +
                               " threads wait at a barrier that the others never reach "
                               "(a thread returned early)");
    if (n_sync && n_grid)
      throw std::runtime_error(where + "threads wait at different barriers (__syncthreads and "
                               "LS_GRID_SYNC)");
    if (n_sync) ++syncs;
    if (n_grid) {
      if (!L.gb)
        throw std::runtime_error(where + "LS_GRID_SYNC needs a cooperative launch "
                                 "(cooperative=True)");
      L.gb->wait();
    }
  }
  if (counting) {
    std::lock_guard<std::mutex> lk(*L.count_mu);
    LaunchCount& c = *L.count;
    for (int st = 0; st < 2; ++st) {
      GlobalSide& g = c.global[st];
      g.requests += tally.g[st].requests;
      g.sectors += tally.g[st].sectors;
      g.min_sectors += tally.g[st].min_sectors;
      g.bytes += tally.g[st].bytes;
      L.uniq[st].insert(tally.uniq[st].begin(), tally.uniq[st].end());
      c.shared[st].requests += tally.s[st].requests;
      c.shared[st].wavefronts += tally.s[st].wavefronts;
      c.shared[st].min_wavefronts += tally.s[st].min_wavefronts;
    }
    for (auto& kv : tally.args) {
      ArgCount& a = c.args[kv.first];
      for (int st = 0; st < 2; ++st) {
        a.side[st].requests += kv.second.side[st].requests;
        a.side[st].sectors += kv.second.side[st].sectors;
        a.side[st].min_sectors += kv.second.side[st].min_sectors;
        a.side[st].bytes += kv.second.side[st].bytes;
        auto& u = tally.arg_uniq[kv.first][st];
        (*L.arg_uniq)[kv.first][st].insert(u.begin(), u.end());
      }
    }
    for (unsigned i = 0; i < nt; ++i) {
      const FlopCount& f = fibers[i].flops;
      for (int p = 0; p < 2; ++p)
        for (int k = 0; k < F_KINDS; ++k) c.flops.n[p][k] += f.n[p][k];
      c.flops.total += f.total;
      c.max_thread_flops = std::max(c.max_thread_flops, f.total);
    }
    c.syncthreads += syncs;
  }
}

}  // namespace

void syncthreads() { yield_with(AT_SYNC); }
void grid_sync() { yield_with(AT_GRID); }

// Blocks of an ordinary launch run on a bounded pool (`workers` OS threads, each taking the next
// block); a cooperative launch puts every block on its own OS thread so that all are resident.
void launch(const KernelInfo& k, const ArgVal* args, uint3 grid, uint3 block, std::size_t smem,
            bool cooperative, unsigned workers, const std::vector<ArgRange>& ranges) {
  const unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
  GridBarrier gb;
  gb.n = (unsigned)nb;
  std::mutex count_mu;
  LaunchCount count;
  std::unordered_set<std::uint64_t> uniq[2];
  std::map<int, std::array<std::unordered_set<std::uint64_t>, 2>> arg_uniq;
  count.kernel = k.name;
  count.grid = grid;
  count.block = block;
  count.shared_mem = smem;
  count.cooperative = cooperative;
  Launch L{&k, args, grid, block, smem, cooperative, cooperative ? &gb : nullptr, &ranges,
           &count_mu, g_counting ? &count : nullptr, uniq, &arg_uniq};
  auto bid_of = [&](unsigned long long i) {
    return uint3{(unsigned)(i % grid.x), (unsigned)((i / grid.x) % grid.y),
                 (unsigned)(i / ((unsigned long long)grid.x * grid.y))};
  };
  std::atomic<unsigned long long> next{0};
  std::mutex err_mu;
  std::exception_ptr err;
  std::atomic<bool> failed{false};
  auto worker = [&](unsigned long long fixed) {
    std::vector<FiberRec> fibers;
    std::vector<char*> stacks;
    std::vector<unsigned char> sm;
    t_ranges = L.ranges;
    try {
      for (;;) {
        unsigned long long i = cooperative ? fixed : next.fetch_add(1);
        if (i >= nb || failed.load()) break;
        run_block(L, bid_of(i), fibers, stacks, sm);
        if (cooperative) {
          gb.exit_block();
          break;
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
      failed = true;
      if (cooperative) gb.fail("another block failed");
    }
    t_sched = nullptr;
    t_block = nullptr;
    t_launch = nullptr;
    t_ranges = nullptr;
    put_stacks(stacks);
  };
  unsigned pool = (unsigned)std::min<unsigned long long>(nb, std::max(1u, workers));
  unsigned nthreads = cooperative ? (unsigned)nb : pool;
  if (nthreads <= 1 && !cooperative) {
    worker(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(nthreads);
    for (unsigned i = 0; i < nthreads; ++i) pool.emplace_back(worker, (unsigned long long)i);
    for (auto& t : pool) t.join();
  }
  if (err) std::rethrow_exception(err);
  if (L.count) {
    for (int st = 0; st < 2; ++st) count.global[st].unique_sectors = uniq[st].size();
    for (auto& kv : arg_uniq)
      for (int st = 0; st < 2; ++st)
        count.args[kv.first].side[st].unique_sectors = kv.second[st].size();
    count.grid_syncs = gb.gen;
    std::lock_guard<std::mutex> lk(g_records_mu);
    g_records.push_back(std::move(count));
  }
}

}  // namespace simt
