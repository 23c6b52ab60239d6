// The SIMT engine: blocks on OS threads, CUDA threads as ucontext fibers, block and grid
// barriers, and the kernel registry. See simt.h for the model.
#include "simt.h"

#include <ucontext.h>

#include <algorithm>
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
};

struct FiberRec {
  ucontext_t ctx;
  ThreadState ts;
  FiberWait wait;
  char* stack;
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
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
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
      swapcontext(&sched, &f.ctx);
      t_fiber = nullptr;
      t_thread = nullptr;
      if (f.wait == AT_SYNC) ++n_sync, ++alive;
      else if (f.wait == AT_GRID) ++n_grid, ++alive;
    }
    if (!alive) break;
    std::string where = "block " + dim_str(bid) + " of " + L.k->name + ": ";
    if (alive != nt)
      throw std::runtime_error(where + std::to_string(alive) + " of " + std::to_string(nt) +
                               " threads wait at a barrier that the others never reach "
                               "(a thread returned early)");
    if (n_sync && n_grid)
      throw std::runtime_error(where + "threads wait at different barriers (__syncthreads and "
                               "LS_GRID_SYNC)");
    if (n_grid) {
      if (!L.gb)
        throw std::runtime_error(where + "LS_GRID_SYNC needs a cooperative launch "
                                 "(cooperative=True)");
      L.gb->wait();
    }
  }
}

}  // namespace

void syncthreads() { yield_with(AT_SYNC); }
void grid_sync() { yield_with(AT_GRID); }

// Blocks of an ordinary launch run on a bounded pool (`workers` OS threads, each taking the next
// block); a cooperative launch puts every block on its own OS thread so that all are resident.
void launch(const KernelInfo& k, const ArgVal* args, uint3 grid, uint3 block, std::size_t smem,
            bool cooperative, unsigned workers) {
  const unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
  GridBarrier gb;
  gb.n = (unsigned)nb;
  Launch L{&k, args, grid, block, smem, cooperative, cooperative ? &gb : nullptr};
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
}

}  // namespace simt
