// lockstep._cpu: the C++ CPU backend's Python bindings.
//
// Today it exposes the canonical math element-wise over NumPy arrays (so C++ and NumPy are
// compared bit for bit), the ordered matmul, and canaries for contraction and flush-to-zero.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

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
  return d;
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
}
