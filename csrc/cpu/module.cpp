// lockstep._cpu: the C++ CPU backend's Python bindings.
//
// The canonical math element-wise over NumPy arrays (so C++ and NumPy are compared bit for
// bit), the ordered matmul, canaries for contraction and flush-to-zero, and the training
// engine (EngineF32 / EngineF64, see lstm_impl.h and docs/cpu.md) with its thread control.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <omp.h>

#include "lockstep/canonical.h"

namespace py = pybind11;
using namespace lockstep;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

[[noreturn]] void bad_dtype(const char* fn, const py::array& a) {
  throw py::type_error(std::string(fn) + ": expected a float32 or float64 array, got " +
                       std::string(py::str(a.dtype())));
}

// Apply a scalar function element-wise, in parallel: outputs are independent.
template <class T, class F>
py::array map_elementwise(const py::array& in, F f) {
  carray<T> src = carray<T>::ensure(in);
  carray<T> dst(std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
  const T* x = src.data();
  T* y = dst.mutable_data();
  const std::int64_t n = src.size();
  {
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) if (n > 4096)
    for (std::int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  }
  return std::move(dst);
}

#define LS_UNARY(NAME, FN)                                                    \
  py::array NAME(const py::array& a) {                                        \
    if (is_f32(a)) return map_elementwise<float>(a, [](float v) { return FN<float>(v); });   \
    if (is_f64(a)) return map_elementwise<double>(a, [](double v) { return FN<double>(v); }); \
    bad_dtype(#NAME, a);                                                      \
  }
LS_UNARY(py_exp, ls_exp)
LS_UNARY(py_log, ls_log)
LS_UNARY(py_sigmoid, ls_sigmoid)
LS_UNARY(py_tanh, ls_tanh)
#undef LS_UNARY

// out[r, c] = start[r, c] + sum_k a[r, k] * b[k, c], ascending k; parallel over rows only.
template <class T>
py::array matmul_t(const py::array& start_in, const py::array& a_in, const py::array& b_in) {
  carray<T> a = carray<T>::ensure(a_in), b = carray<T>::ensure(b_in);
  carray<T> start = carray<T>::ensure(start_in);
  if (!a || !b || !start || a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(0))
    throw py::value_error("matmul: need 2-D arrays of one dtype with a.shape[1] == b.shape[0]");
  const py::ssize_t R = a.shape(0), K = a.shape(1), C = b.shape(1);
  if (start.ndim() != 2 || start.shape(0) != R || start.shape(1) != C)
    throw py::value_error("matmul: start must have shape (a.shape[0], b.shape[1])");
  carray<T> out({R, C});
  const T *pa = a.data(), *pb = b.data(), *ps = start.data();
  T* po = out.mutable_data();
  {
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static)
    for (py::ssize_t r = 0; r < R; ++r) {
      T* o = po + r * C;
      for (py::ssize_t c = 0; c < C; ++c) o[c] = ps[r * C + c];
      for (py::ssize_t k = 0; k < K; ++k) {
        const T av = pa[r * K + k];
        const T* brow = pb + k * C;
        for (py::ssize_t c = 0; c < C; ++c) o[c] = o[c] + (av * brow[c]);
      }
    }
  }
  return std::move(out);
}

py::array py_matmul(const py::array& start, const py::array& a, const py::array& b) {
  if (is_f32(a)) return matmul_t<float>(start, a, b);
  if (is_f64(a)) return matmul_t<double>(start, a, b);
  bad_dtype("matmul", a);
}

// (a*b) + c element-wise, compiled with the project's flags: equals the separately rounded
// result only if the compiler did not contract it into an FMA.
template <class T>
py::array muladd_t(const py::array& a_in, const py::array& b_in, const py::array& c_in) {
  carray<T> a = carray<T>::ensure(a_in), b = carray<T>::ensure(b_in), c = carray<T>::ensure(c_in);
  if (a.size() != b.size() || a.size() != c.size())
    throw py::value_error("muladd: a, b and c must have the same size");
  carray<T> out(a.size());
  const T *pa = a.data(), *pb = b.data(), *pc = c.data();
  T* po = out.mutable_data();
  for (py::ssize_t i = 0; i < a.size(); ++i) po[i] = (pa[i] * pb[i]) + pc[i];
  return std::move(out);
}

py::array py_muladd(const py::array& a, const py::array& b, const py::array& c) {
  if (is_f32(a)) return muladd_t<float>(a, b, c);
  if (is_f64(a)) return muladd_t<double>(a, b, c);
  bad_dtype("muladd", a);
}

// Flush-to-zero / denormals-are-zero state of the calling thread (x86 MXCSR).
py::dict fp_env() {
  py::dict d;
#if defined(__SSE__)
  unsigned csr = _mm_getcsr();
  d["ftz"] = bool(csr & 0x8000);
  d["daz"] = bool(csr & 0x0040);
#else
  d["ftz"] = false;
  d["daz"] = false;
#endif
  return d;
}

bool cpu_has(const std::string& isa);

py::dict build_info() {
  py::dict d;
#if defined(__VERSION__)
  d["compiler"] = std::string(__VERSION__);
#endif
#if defined(__FAST_MATH__)
  d["fast_math"] = true;
#else
  d["fast_math"] = false;
#endif
#if defined(__FP_FAST_FMA)
  d["fp_fast_fma"] = true;  // the target has FMA; -ffp-contract=off keeps it out of our code
#else
  d["fp_fast_fma"] = false;
#endif
  d["openmp"] = int(_OPENMP);
  d["max_threads"] = omp_get_max_threads();
  d["avx2_kernels"] = bool(LOCKSTEP_CPU_AVX2);
  d["cpu_has_avx2"] = cpu_has("avx2");
  d["avx512_kernels"] = bool(LOCKSTEP_CPU_AVX512);
  d["cpu_has_avx512"] = cpu_has("avx512");
  return d;
}


// ---- training engine ---------------------------------------------------------------------

using lockstep_cpu::Config;
using lockstep_cpu::Engine;

// [0]: threads of the engine's parallel regions (the most a call uses); [1]: MFLOP of matrix
// products per thread of the adaptive rule (0 = always [0]). See set_num_threads.
// Default: adaptive (one thread per kAutoMflopPerThread MFLOP of a call's products, see
// EngineImpl::nthreads); set_num_threads(n) forces n.
constexpr int kAutoMflopPerThread = 8;
int g_threads[2] = {1, kAutoMflopPerThread};

// Whether this build has the kernel unit of isa and this CPU runs it ("base" always).
bool cpu_has(const std::string& isa) {
  if (isa == "base") return true;
#if defined(__GNUC__) || defined(__clang__)
  __builtin_cpu_init();
#if LOCKSTEP_CPU_AVX2
  if (isa == "avx2") return __builtin_cpu_supports("avx2");
#endif
#if LOCKSTEP_CPU_AVX512
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
#endif
  return false;
}

// The kernel unit of an ISA name: LOCKSTEP_CPU_ISA if set (and possible) for "auto", else the
// widest this build and CPU run.
std::string pick_isa(const std::string& want_in) {
  std::string want = want_in;
  if (want == "auto") {
    const char* env = std::getenv("LOCKSTEP_CPU_ISA");
    want = env && *env ? env : "auto";
  }
  if (want == "auto") return cpu_has("avx512") ? "avx512" : cpu_has("avx2") ? "avx2" : "base";
  if (want != "base" && want != "avx2" && want != "avx512")
    throw py::value_error("isa must be 'auto', 'base', 'avx2' or 'avx512', got '" + want + "'");
  if (!cpu_has(want))
    throw py::value_error("isa '" + want + "' requested, but this build or CPU has no " +
                          (want == "avx2" ? "AVX2" : "AVX-512") + " kernels; use isa='auto'");
  return want;
}

const lockstep_cpu::Kernels& kernels(const std::string& isa) {
#if LOCKSTEP_CPU_AVX512
  if (isa == "avx512") return lockstep_cpu::kernels_avx512;
#endif
#if LOCKSTEP_CPU_AVX2
  if (isa == "avx2") return lockstep_cpu::kernels_avx2;
#endif
  return lockstep_cpu::kernels_base;
}

template <class T> Engine<T>* make_engine(const Config& c, const std::string& isa) {
  if constexpr (sizeof(T) == 4) return kernels(isa).make_f32(c, g_threads);
  else return kernels(isa).make_f64(c, g_threads);
}

const char* const kSlotNames[4] = {"params", "m", "v", "velocity"};

template <class S>
int lookup(const std::string& s, const S* names, int n, const char* what) {
  for (int i = 0; i < n; ++i)
    if (s == names[i]) return i;
  std::string all;
  for (int i = 0; i < n; ++i) all += std::string(i ? ", " : "") + std::string(names[i]);
  throw py::value_error(std::string("unknown ") + what + " '" + s + "'; expected one of " + all);
}

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
class PyEngine {
 public:
  PyEngine(int I, int H, int O, int num_layers, const std::string& loss, const std::string& loss_on,
           const std::string& optimizer, double lr, double momentum, double beta1, double beta2,
           double eps, double clip, int grad_shards, const std::string& isa) {
    if (I <= 0 || H <= 0 || O <= 0)
      throw py::value_error("I, H and O must be positive, got " + std::to_string(I) + ", " +
                            std::to_string(H) + ", " + std::to_string(O));
    if (num_layers < 1)
      throw py::value_error("num_layers must be >= 1, got " + std::to_string(num_layers));
    if (loss != "mse" && loss != "ce") throw py::value_error("loss must be 'mse' or 'ce', got '" + loss + "'");
    if (loss_on != "all" && loss_on != "last")
      throw py::value_error("loss_on must be 'all' or 'last', got '" + loss_on + "'");
    if (optimizer != "sgd" && optimizer != "adam")
      throw py::value_error("optimizer must be 'sgd' or 'adam', got '" + optimizer + "'");
    cfg_.I = I, cfg_.H = H, cfg_.O = O, cfg_.num_layers = num_layers;
    // param_names(L): W_ih, W_hh, b, W_ih_l1, W_hh_l1, b_l1, ..., W_out, b_out
    for (int l = 0; l < num_layers; ++l) {
      const std::string sfx = l ? "_l" + std::to_string(l) : "";
      for (const char* n : {"W_ih", "W_hh", "b"}) names_.push_back(n + sfx);
    }
    names_.push_back("W_out");
    names_.push_back("b_out");
    cfg_.loss = loss == "ce";
    cfg_.loss_all = loss_on == "all";
    cfg_.optimizer = optimizer == "adam";
    cfg_.lr = lr, cfg_.momentum = momentum, cfg_.beta1 = beta1, cfg_.beta2 = beta2;
    cfg_.eps = eps, cfg_.clip = clip;
    if (grad_shards < 1) throw py::value_error("grad_shards must be >= 1, got " + std::to_string(grad_shards));
    cfg_.grad_shards = grad_shards;
    isa_ = pick_isa(isa);
    e_.reset(make_engine<T>(cfg_, isa_));
  }

  void set(const std::string& slot, const std::string& name, const py::array& a) {
    const int s = lookup(slot, kSlotNames, 4, "slot"), t = tensor(name);
    std::vector<py::ssize_t> want = shape_of(t);
    bool ok = a.dtype().is(py::dtype::of<T>()) && a.ndim() == (py::ssize_t)want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(i) == want[i];
    if (!ok)
      throw py::value_error(std::string("set: ") + slot + " " + name + " must be a " +
                            shape_str(py::array(py::dtype::of<T>(), want)) + " " +
                            std::string(py::str(py::dtype::of<T>())) + " array, got " + shape_str(a) +
                            " " + std::string(py::str(a.dtype())));
    carray<T> c = carray<T>::ensure(a);
    std::memcpy(e_->slot(s) + e_->offset(t), c.data(), sizeof(T) * (size_t)e_->size(t));
    if (s == lockstep_cpu::kParams) e_->params_changed();
  }

  py::array get(const std::string& slot, const std::string& name) {
    const int s = lookup(slot, kSlotNames, 4, "slot"), t = tensor(name);
    carray<T> out(shape_of(t));
    std::memcpy(out.mutable_data(), e_->slot(s) + e_->offset(t), sizeof(T) * (size_t)e_->size(t));
    return std::move(out);
  }

  py::array train_epoch(const py::array& x_in, const py::array& y_in, const py::list& batches,
                        const py::object& masks_in) {
    int Tn;
    py::ssize_t N;
    carray<T> x = check_x(x_in, "train_epoch", &Tn, &N);
    py::array y = check_y(y_in, "train_epoch", Tn, N);
    std::vector<std::int64_t> idx, off{0};
    for (py::handle h : batches) {
      py::array b = py::array::ensure(h);
      if (!b || b.ndim() != 1 || (b.dtype().kind() != 'i' && b.dtype().kind() != 'u'))
        throw py::value_error("train_epoch: every batch must be a 1-D integer array of sample indices");
      py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> bi(b);
      if (bi.size() == 0) throw py::value_error("train_epoch: empty batch");
      for (py::ssize_t i = 0; i < bi.size(); ++i) {
        const std::int64_t v = bi.data()[i];
        if (v < 0 || v >= N)
          throw py::value_error("train_epoch: sample index " + std::to_string(v) + " outside [0, " +
                                std::to_string(N) + ")");
        idx.push_back(v);
      }
      off.push_back((std::int64_t)idx.size());
    }
    const int nb = (int)off.size() - 1;
    // Each batch's dropout masks (kept alive here; None: none for that batch).
    std::vector<carray<T>> keep;
    std::vector<const T*> mp;
    if (!masks_in.is_none()) {
      py::list ml = py::list(masks_in);
      if ((int)ml.size() != nb)
        throw py::value_error("train_epoch: masks must hold one entry per batch (" +
                              std::to_string(nb) + "), got " + std::to_string(ml.size()));
      for (int b = 0; b < nb; ++b) {
        if (ml[b].is_none()) {
          mp.push_back(nullptr);
          continue;
        }
        keep.push_back(check_masks(ml[b], "train_epoch", Tn, off[b + 1] - off[b]));
        mp.push_back(keep.back().data());
      }
    }
    carray<T> losses(nb);
    T* lp = losses.mutable_data();
    const void* yp = y.data();
    const T* const* mpp = mp.empty() ? nullptr : mp.data();
    {
      py::gil_scoped_release nogil;
      e_->train_epoch(x.data(), Tn, N, yp, idx.data(), off.data(), nb, mpp, lp);
    }
    return std::move(losses);
  }

  // One group of a sharded batch: (loss sum, flat gradients) of the samples idx, with dy
  // divided by nterms (the whole batch's number of loss terms).
  py::tuple shard_partial(const py::array& x_in, const py::array& y_in, const py::array& idx_in,
                          std::int64_t nterms, const py::object& masks_in) {
    int Tn;
    py::ssize_t N;
    carray<T> x = check_x(x_in, "shard_partial", &Tn, &N);
    py::array y = check_y(y_in, "shard_partial", Tn, N);
    py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> ix(idx_in);
    if (ix.ndim() != 1) throw py::value_error("shard_partial: idx must be a 1-D integer array");
    for (py::ssize_t i = 0; i < ix.size(); ++i)
      if (ix.data()[i] < 0 || ix.data()[i] >= N)
        throw py::value_error("shard_partial: sample index " + std::to_string(ix.data()[i]) +
                              " outside [0, " + std::to_string(N) + ")");
    if (nterms < 1) throw py::value_error("shard_partial: nterms must be >= 1");
    carray<T> mk;
    if (!masks_in.is_none()) mk = check_masks(masks_in, "shard_partial", Tn, ix.size());
    const T* mp = masks_in.is_none() ? nullptr : mk.data();
    const std::int64_t P = num_params();
    carray<T> g(std::vector<py::ssize_t>{(py::ssize_t)P});
    T lsum;
    {
      py::gil_scoped_release nogil;
      lsum = e_->shard_partial(x.data(), Tn, N, y.data(), ix.data(), ix.size(), nterms, mp,
                               g.mutable_data());
    }
    return py::make_tuple(py::array(py::dtype::of<T>(), {}, {}, &lsum), g);
  }

  void apply_grads(const py::array& g_in) {
    const std::int64_t P = num_params();
    if (!g_in.dtype().is(py::dtype::of<T>()) || g_in.ndim() != 1 || g_in.shape(0) != P)
      throw py::value_error("apply_grads: gradients must be a flat (" + std::to_string(P) + ",) " +
                            std::string(py::str(py::dtype::of<T>())) + " array, got " +
                            shape_str(g_in) + " " + std::string(py::str(g_in.dtype())));
    carray<T> g = carray<T>::ensure(g_in);
    py::gil_scoped_release nogil;
    e_->apply_grads(g.data());
  }

  // (outputs (T, N, O), loss or None)
  py::tuple forward(const py::array& x_in, const py::object& y_in) {
    int Tn;
    py::ssize_t N;
    carray<T> x = check_x(x_in, "forward", &Tn, &N);
    py::array y;
    if (!y_in.is_none()) y = check_y(py::array::ensure(y_in), "forward", Tn, N);
    carray<T> out({(py::ssize_t)Tn, N, (py::ssize_t)cfg_.O});
    const void* yp = y_in.is_none() ? nullptr : y.data();
    T* op = out.mutable_data();
    T loss;
    {
      py::gil_scoped_release nogil;
      loss = e_->forward_only(x.data(), Tn, N, yp, op);
    }
    if (y_in.is_none()) return py::make_tuple(out, py::none());
    return py::make_tuple(out, py::array(py::dtype::of<T>(), {}, {}, &loss));
  }

  std::int64_t get_step() { return e_->step(); }
  void set_step(std::int64_t s) { e_->step() = s; }
  T get_b1() { return e_->b1_pow(); }
  void set_b1(T v) { e_->b1_pow() = v; }
  T get_b2() { return e_->b2_pow(); }
  void set_b2(T v) { e_->b2_pow() = v; }
  std::int64_t bytes() { return e_->bytes(); }
  // LOCKSTEP_CPU_PROFILE=1: seconds per phase of train steps so far (thread 0); reset zeroes.
  py::dict profile(bool reset) {
    static const char* const names[lockstep_cpu::kNumPhases] = {
        "inproj", "rec_gemm", "rec_cell", "rec_sync", "head", "loss", "bwd_pack", "bwd_gemm",
        "bwd_cell", "bwd_sync", "wgrad", "natural", "dh_above", "optim", "repack", "other"};
    double* p = e_->profile();
    py::dict d;
    for (int i = 0; i < lockstep_cpu::kNumPhases; ++i) {
      d[names[i]] = p[i];
      if (reset) p[i] = 0;
    }
    return d;
  }
  const std::string& isa() const { return isa_; }

 private:
  int tensor(const std::string& name) const {
    return lookup(name, names_.data(), (int)names_.size(), "tensor");
  }
  std::int64_t num_params() const {
    const int last = (int)names_.size() - 1;
    return e_->offset(last) + e_->size(last);
  }
  // Shape of tensor t (param_names order).
  std::vector<py::ssize_t> shape_of(int t) const {
    const py::ssize_t I = cfg_.I, H = cfg_.H, O = cfg_.O, L = cfg_.num_layers;
    if (t == 3 * L) return {O, H};
    if (t == 3 * L + 1) return {O};
    if (t % 3 == 2) return {4 * H};
    return {4 * H, t == 0 ? I : H};  // W_ih (layer 0 reads x) or W_hh, W_ih_l{l}
  }

  // Dropout masks of B samples: a C-contiguous (L-1, Tn, B, H) array of the working dtype.
  carray<T> check_masks(const py::handle& m_in, const char* fn, int Tn, py::ssize_t B) {
    const std::vector<py::ssize_t> want{cfg_.num_layers - 1, Tn, B, cfg_.H};
    if (cfg_.num_layers < 2)
      throw py::value_error(std::string(fn) + ": dropout masks need num_layers >= 2 (pass None)");
    py::array m = py::array::ensure(m_in);
    bool ok = m && m.dtype().is(py::dtype::of<T>()) && m.ndim() == 4;
    for (size_t i = 0; ok && i < 4; ++i) ok = m.shape(i) == want[i];
    if (!ok)
      throw py::value_error(std::string(fn) + ": dropout masks must be a " +
                            shape_str(py::array(py::dtype::of<T>(), want)) + " " +
                            std::string(py::str(py::dtype::of<T>())) + " array, got " +
                            (m ? shape_str(m) + " " + std::string(py::str(m.dtype()))
                               : std::string(py::str(py::type::of(m_in)))));
    return carray<T>::ensure(m);
  }

  carray<T> check_x(const py::array& x, const char* fn, int* Tn, py::ssize_t* N) {
    if (!x || !x.dtype().is(py::dtype::of<T>()) || x.ndim() != 3 || x.shape(2) != cfg_.I ||
        x.shape(0) < 1 || x.shape(1) < 1)
      throw py::value_error(std::string(fn) + ": x must be a (T, N, " + std::to_string(cfg_.I) +
                            ") " + std::string(py::str(py::dtype::of<T>())) +
                            " array (time-major, T, N >= 1), got " + shape_str(x) + " " +
                            std::string(py::str(x.dtype())));
    if (x.shape(0) > (1 << 30)) throw py::value_error(std::string(fn) + ": too many time steps");
    *Tn = (int)x.shape(0);
    *N = x.shape(1);
    return carray<T>::ensure(x);
  }

  py::array check_y(const py::array& y, const char* fn, int Tn, py::ssize_t N) {
    std::vector<py::ssize_t> want;
    if (cfg_.loss_all) want.push_back(Tn);
    want.push_back(N);
    if (cfg_.loss == 0) want.push_back(cfg_.O);
    bool ok = y && y.ndim() == (py::ssize_t)want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = y.shape(i) == want[i];
    const std::string ws = shape_str(py::array(py::dtype::of<T>(), want));
    if (cfg_.loss == 0) {
      if (!ok || !y.dtype().is(py::dtype::of<T>()))
        throw py::value_error(std::string(fn) + ": MSE targets must be a " + ws + " " +
                              std::string(py::str(py::dtype::of<T>())) + " array, got " +
                              shape_str(y) + " " + std::string(py::str(y.dtype())));
      return carray<T>::ensure(y);
    }
    if (!ok || (y.dtype().kind() != 'i' && y.dtype().kind() != 'u'))
      throw py::value_error(std::string(fn) + ": cross-entropy targets must be a " + ws +
                            " integer array of class indices, got " + shape_str(y) + " " +
                            std::string(py::str(y.dtype())));
    py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> yi(y);
    for (py::ssize_t i = 0; i < yi.size(); ++i)
      if (yi.data()[i] < 0 || yi.data()[i] >= cfg_.O)
        throw py::value_error(std::string(fn) + ": class index " + std::to_string(yi.data()[i]) +
                              " outside [0, " + std::to_string(cfg_.O) + ")");
    return std::move(yi);
  }

  Config cfg_;
  std::vector<std::string> names_;  // tensor names in param_names(L) order
  std::string isa_;
  std::unique_ptr<Engine<T>> e_;
};

template <class T>
void bind_engine(py::module_& m, const char* name) {
  py::class_<PyEngine<T>>(m, name)
      .def(py::init<int, int, int, int, const std::string&, const std::string&, const std::string&,
                    double, double, double, double, double, double, int, const std::string&>(),
           py::arg("I"), py::arg("H"), py::arg("O"), py::arg("num_layers") = 1, py::arg("loss") = "mse",
           py::arg("loss_on") = "all", py::arg("optimizer") = "sgd", py::arg("lr") = 0.01,
           py::arg("momentum") = 0.0, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
           py::arg("eps") = 1e-8, py::arg("clip") = 0.0, py::arg("grad_shards") = 1,
           py::arg("isa") = "auto")
      .def("shard_partial", &PyEngine<T>::shard_partial,
           "(loss sum, flat gradients) of one group of a sharded batch (no update)",
           py::arg("x"), py::arg("y"), py::arg("idx"), py::arg("nterms"),
           py::arg("masks") = py::none())
      .def("apply_grads", &PyEngine<T>::apply_grads,
           "clipping and one optimizer step on the given flat gradients", py::arg("grads"))
      .def("set", &PyEngine<T>::set, "copy a tensor into a slot (params, m, v, velocity)",
           py::arg("slot"), py::arg("name"), py::arg("array"))
      .def("get", &PyEngine<T>::get, "copy of a tensor of a slot", py::arg("slot"), py::arg("name"))
      .def("train_epoch", &PyEngine<T>::train_epoch,
           "train on each batch of sample indices in order (with its dropout masks, if any); "
           "returns the batch losses",
           py::arg("x"), py::arg("y"), py::arg("batches"), py::arg("masks") = py::none())
      .def("forward", &PyEngine<T>::forward, "(outputs, loss or None) without updating",
           py::arg("x"), py::arg("y") = py::none())
      .def_property("step", &PyEngine<T>::get_step, &PyEngine<T>::set_step)
      .def_property("b1_pow", &PyEngine<T>::get_b1, &PyEngine<T>::set_b1)
      .def_property("b2_pow", &PyEngine<T>::get_b2, &PyEngine<T>::set_b2)
      .def_property_readonly("bytes", &PyEngine<T>::bytes, "bytes held in the engine's buffers")
      .def("profile", &PyEngine<T>::profile, "seconds per phase of the train steps so far (LOCKSTEP_CPU_PROFILE=1, thread 0)", py::arg("reset") = false)
      .def_property_readonly("isa", &PyEngine<T>::isa);
}

template <class T>
py::array kernel_muladd_t(const py::array& a_in, const py::array& b_in, const py::array& c_in,
                          const std::string& isa_in) {
  carray<T> a = carray<T>::ensure(a_in), b = carray<T>::ensure(b_in), c = carray<T>::ensure(c_in);
  if (a.size() != b.size() || a.size() != c.size())
    throw py::value_error("kernel_muladd: a, b and c must have the same size");
  carray<T> out(a.size());
  const std::string isa = pick_isa(isa_in);
  void (*fn)(const T*, const T*, const T*, T*, std::int64_t) = nullptr;
  if constexpr (sizeof(T) == 4) fn = kernels(isa).muladd_f32;
  else fn = kernels(isa).muladd_f64;
  fn(a.data(), b.data(), c.data(), out.mutable_data(), a.size());
  return std::move(out);
}

py::array py_kernel_muladd(const py::array& a, const py::array& b, const py::array& c,
                           const std::string& isa) {
  if (is_f32(a)) return kernel_muladd_t<float>(a, b, c, isa);
  if (is_f64(a)) return kernel_muladd_t<double>(a, b, c, isa);
  bad_dtype("kernel_muladd", a);
}

template <class T>
py::array kernel_act_t(const py::array& x_in, int which, const std::string& isa_in) {
  carray<T> x = carray<T>::ensure(x_in);
  carray<T> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const std::string isa = pick_isa(isa_in);
  void (*fn)(const T*, T*, std::int64_t, int) = nullptr;
  if constexpr (sizeof(T) == 4) fn = kernels(isa).act_f32;
  else fn = kernels(isa).act_f64;
  fn(x.data(), out.mutable_data(), x.size(), which);
  return std::move(out);
}

py::array py_kernel_act(const py::array& x, const std::string& fn, const std::string& isa) {
  if (fn != "sigmoid" && fn != "tanh")
    throw py::value_error("kernel_act: fn must be 'sigmoid' or 'tanh', got '" + fn + "'");
  const int which = fn == "tanh";
  if (is_f32(x)) return kernel_act_t<float>(x, which, isa);
  if (is_f64(x)) return kernel_act_t<double>(x, which, isa);
  bad_dtype("kernel_act", x);
}

void set_num_threads(int n, bool adaptive) {
  if (n < 1) throw py::value_error("set_num_threads: need n >= 1, got " + std::to_string(n));
  g_threads[0] = n;
  g_threads[1] = adaptive ? kAutoMflopPerThread : 0;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "lockstep C++ CPU backend (canonical arithmetic, OpenMP)";
  m.def("exp", &py_exp, "canonical exp, element-wise", py::arg("x"));
  m.def("log", &py_log, "canonical log, element-wise", py::arg("x"));
  m.def("sigmoid", &py_sigmoid, "canonical sigmoid, element-wise", py::arg("x"));
  m.def("tanh", &py_tanh, "canonical tanh, element-wise", py::arg("x"));
  m.def("matmul", &py_matmul, "start + a @ b with ascending-k sequential sums",
        py::arg("start"), py::arg("a"), py::arg("b"));
  m.def("muladd", &py_muladd, "(a*b)+c element-wise (contraction canary)", py::arg("a"),
        py::arg("b"), py::arg("c"));
  m.def("fp_env", &fp_env, "flush-to-zero / denormals-are-zero state of this thread");
  m.def("build_info", &build_info, "compiler and OpenMP facts of this build");
  g_threads[0] = omp_get_max_threads() > 0 ? omp_get_max_threads() : 1;
  m.def("set_num_threads", &set_num_threads,
        "threads of the training engine: at most n; adaptive (the default before any call): one "
        "thread per 8 MFLOP of a call's matrix products (and per MFLOP of a time step when the "
        "samples are too few to split by rows); adaptive=False: exactly n. The results are the "
        "same bits either way",
        py::arg("n"), py::arg("adaptive") = false);
  m.def("get_num_threads", []() { return g_threads[0]; }, "threads of the training engine");
  m.def("get_adaptive_threads", []() { return g_threads[1] != 0; },
        "whether small steps run on one thread");
  m.def("isa", []() { return pick_isa("auto"); }, "instruction set the engine uses by default");
  m.def("kernel_muladd", &py_kernel_muladd,
        "(a*b)+c element-wise, compiled in the engine's unit (contraction canary)", py::arg("a"),
        py::arg("b"), py::arg("c"), py::arg("isa") = "auto");
  m.def("kernel_act", &py_kernel_act,
        "the engine's vector sigmoid or tanh (same bits as the scalar canonical functions)",
        py::arg("x"), py::arg("fn"), py::arg("isa") = "auto");
  bind_engine<float>(m, "EngineF32");
  bind_engine<double>(m, "EngineF64");
}
