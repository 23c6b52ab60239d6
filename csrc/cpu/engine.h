// lockstep._cpu training engine: the interface between the Python bindings (module.cpp) and
// the kernel translation units (kernels_*.cpp), which are compiled once per instruction set.
//
// Nothing in this header does floating-point arithmetic, so it is safe to include from
// translation units compiled with different -m flags (no inline function can be merged across
// them by the linker).
#pragma once

#include <cstdint>

namespace lockstep_cpu {

struct Config {
  int I = 1, H = 1, O = 1;
  int num_layers = 1;     // L stacked layers; layer l > 0 reads layer l - 1's h (arithmetic.md)
  int loss = 0;           // 0 = MSE, 1 = softmax cross-entropy
  bool loss_all = true;   // loss_on == "all" (every step) or "last"
  int optimizer = 0;      // 0 = SGD (momentum if momentum != 0), 1 = Adam
  double lr = 0.01, momentum = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, clip = 0.0;
  int grad_shards = 1;    // S: a batch's loss and gradients summed in S groups (arithmetic.md)
};

// Phases of a training step timed under LOCKSTEP_CPU_PROFILE=1 (Engine::profile).
enum Phase {
  kPhInproj = 0, kPhRecGemm, kPhRecCell, kPhRecSync, kPhHead, kPhLoss, kPhBwdPack, kPhBwdGemm,
  kPhBwdCell, kPhBwdSync, kPhWgrad, kPhNatural, kPhDhAbove, kPhOptim, kPhRepack, kPhOther,
  kNumPhases
};

// Which flat buffer: parameters or one of the optimizer states.
enum Slot { kParams = 0, kAdamM = 1, kAdamV = 2, kVelocity = 3, kNumSlots = 4 };

// One training run of one model with one dtype. All buffers live as long as the engine.
template <class T>
class Engine {
 public:
  virtual ~Engine() {}
  // Flat buffer of a slot: the 3L + 2 tensors in param_names(L) order, W_ih (4H, I), W_hh (4H, H),
  // b (4H), then W_ih_l1 (4H, H), W_hh_l1, b_l1, ... of the layers above, W_out (O, H), b_out (O).
  virtual T* slot(int s) = 0;
  virtual std::int64_t offset(int tensor) const = 0;
  virtual std::int64_t size(int tensor) const = 0;
  // Call after writing the parameter slot from outside (repacks the kernel layouts).
  virtual void params_changed() = 0;
  virtual std::int64_t& step() = 0;
  virtual T& b1_pow() = 0;
  virtual T& b2_pow() = 0;
  // One epoch: x (Tn, N, I) time-major; y (Tn, N, O) / (N, O) floats for MSE or (Tn, N) / (N)
  // int64 class indices for CE; batch b has the sample indices idx[off[b]] .. idx[off[b+1]-1].
  // masks: null (no dropout) or per batch b null or its dropout masks (L-1, Tn, B_b, H).
  // losses[b] receives each batch's loss. Validation is the caller's job.
  virtual void train_epoch(const T* x, int Tn, std::int64_t N, const void* y,
                           const std::int64_t* idx, const std::int64_t* off, int nbatch,
                           const T* const* masks, T* losses) = 0;
  // One group of a sharded batch (docs/arithmetic.md, "Sharded gradients"): the samples
  // idx[0 .. B-1] (B may be 0), dy divided by nterms (the whole batch's N), masks null or the
  // group's dropout masks (L-1, Tn, B, H); writes the group's gradients (flat, as the parameter
  // slot) to grad and returns its loss sum (not divided).
  virtual T shard_partial(const T* x, int Tn, std::int64_t N, const void* y,
                          const std::int64_t* idx, std::int64_t B, std::int64_t nterms,
                          const T* masks, T* grad) = 0;
  // Clipping and one optimizer step on the given gradients (flat); then the kernel layouts.
  virtual void apply_grads(const T* grad) = 0;
  // Forward over all N samples; out (Tn, N, O) if not null; returns the loss if y is not null.
  virtual T forward_only(const T* x, int Tn, std::int64_t N, const void* y, T* out) = 0;
  // Bytes held in buffers (parameters, optimizer state, caches, workspaces).
  virtual std::int64_t bytes() const = 0;
  // kNumPhases accumulated seconds (LOCKSTEP_CPU_PROFILE=1), writable (zero to reset).
  virtual double* profile() = 0;
};

// What one kernel unit (kernels_<isa>.cpp, one instruction set) provides. threads points to two
// ints owned by the module: the thread count and the adaptive threshold (MFLOP per step, 0 = off).
struct Kernels {
  Engine<float>* (*make_f32)(const Config& cfg, int* threads);
  Engine<double>* (*make_f64)(const Config& cfg, int* threads);
  // (a*b)+c element-wise compiled in the unit: the contraction canary of that unit.
  void (*muladd_f32)(const float* a, const float* b, const float* c, float* o, std::int64_t n);
  void (*muladd_f64)(const double* a, const double* b, const double* c, double* o, std::int64_t n);
  // The engine's vector sigmoid (which = 0) / tanh (which = 1), for bitwise tests against the
  // scalar canonical functions.
  void (*act_f32)(const float* x, float* y, std::int64_t n, int which);
  void (*act_f64)(const double* x, double* y, std::int64_t n, int which);
};

// One per unit: the baseline ISA always; on x86-64 AVX2 (-mavx2) and AVX-512 (-mavx512f/dq/vl/bw),
// none of which enables FMA, and every unit is compiled with -ffp-contract=off.
extern const Kernels kernels_base;
extern const Kernels kernels_avx2;
extern const Kernels kernels_avx512;

}  // namespace lockstep_cpu
