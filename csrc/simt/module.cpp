// lockstep._simt: launch the cuda/*.cu kernels on the CPU with CuPy's call shape,
//   launch(name, grid, block, args, shared_mem=0, cooperative=False)
// NumPy arrays stand for device pointers, NumPy/Python scalars for by-value parameters. Every
// argument is checked against the kernel's C++ signature before anything runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "simt_engine.h"

namespace py = pybind11;
using simt::ArgKind;

namespace {

unsigned g_workers = 1;

const char* kind_name(ArgKind k) {
  switch (k) {
    case simt::A_I32: return "int";
    case simt::A_I64: return "long long";
    case simt::A_U32: return "unsigned int";
    case simt::A_F32: return "float";
    case simt::A_F64: return "double";
    case simt::A_PTR_F32: return "float*";
    case simt::A_PTR_F64: return "double*";
    case simt::A_PTR_I32: return "int*";
    case simt::A_PTR_I64: return "long long*";
    case simt::A_PTR_U32: return "unsigned int*";
    case simt::A_CPTR_F32: return "const float*";
    case simt::A_CPTR_F64: return "const double*";
    case simt::A_CPTR_I32: return "const int*";
    case simt::A_CPTR_I64: return "const long long*";
    case simt::A_CPTR_U32: return "const unsigned int*";
  }
  return "?";
}

bool is_ptr(ArgKind k) { return k >= simt::A_PTR_F32; }
bool is_const_ptr(ArgKind k) { return k >= simt::A_CPTR_F32; }

py::dtype ptr_dtype(ArgKind k) {
  switch (k) {
    case simt::A_PTR_F32: case simt::A_CPTR_F32: return py::dtype::of<float>();
    case simt::A_PTR_F64: case simt::A_CPTR_F64: return py::dtype::of<double>();
    case simt::A_PTR_I32: case simt::A_CPTR_I32: return py::dtype::of<std::int32_t>();
    case simt::A_PTR_I64: case simt::A_CPTR_I64: return py::dtype::of<std::int64_t>();
    default: return py::dtype::of<std::uint32_t>();
  }
}

simt::uint3 to_dim(const py::object& o, const char* what) {
  std::vector<long long> v;
  if (py::isinstance<py::int_>(o)) {
    v.push_back(o.cast<long long>());
  } else if (py::isinstance<py::tuple>(o) || py::isinstance<py::list>(o)) {
    for (auto e : o) {
      if (!py::isinstance<py::int_>(e)) throw py::type_error(std::string(what) + " must hold ints");
      v.push_back(e.cast<long long>());
    }
  } else {
    throw py::type_error(std::string(what) + " must be an int or a tuple of up to 3 ints");
  }
  if (v.empty() || v.size() > 3)
    throw py::value_error(std::string(what) + " must have 1 to 3 dimensions");
  while (v.size() < 3) v.push_back(1);
  for (long long d : v)
    if (d < 1 || d > (1LL << 31) - 1)
      throw py::value_error(std::string(what) + " dimensions must be in [1, 2**31)");
  return simt::uint3{(unsigned)v[0], (unsigned)v[1], (unsigned)v[2]};
}

std::string where(const std::string& kernel, size_t i) {
  return kernel + ": argument " + std::to_string(i) + " ";
}

simt::ArgVal convert(const std::string& kn, size_t i, ArgKind k, const py::handle& a) {
  simt::ArgVal v;
  std::string w = where(kn, i) + "(" + kind_name(k) + ") ";
  if (is_ptr(k)) {
    if (!py::isinstance<py::array>(a))
      throw py::type_error(w + "must be a NumPy array, got " +
                           std::string(py::str(py::type::of(a))));
    py::array arr = py::reinterpret_borrow<py::array>(a);
    if (!arr.dtype().is(ptr_dtype(k)))
      throw py::type_error(w + "needs dtype " + std::string(py::str(ptr_dtype(k))) + ", got " +
                           std::string(py::str(arr.dtype())));
    if (!(arr.flags() & py::array::c_style))
      throw py::value_error(w + "must be C-contiguous");
    if (!is_const_ptr(k) && !arr.writeable())
      throw py::value_error(w + "is written by the kernel but the array is read-only");
    v.ptr = const_cast<void*>(arr.data());
    return v;
  }
  py::module_ np = py::module_::import("numpy");
  bool np_scalar = py::isinstance(a, np.attr("generic"));
  if (k == simt::A_F32 || k == simt::A_F64) {
    // Floats must already be in the parameter's dtype: rounding happens once, on the host,
    // where the caller can see it (docs/arithmetic.md section 2).
    py::dtype want = k == simt::A_F32 ? py::dtype::of<float>() : py::dtype::of<double>();
    bool ok = np_scalar ? py::dtype::from_args(a.attr("dtype")).is(want)
                        : (k == simt::A_F64 && py::isinstance<py::float_>(a));
    if (!ok)
      throw py::type_error(w + "must be a numpy." + std::string(py::str(want)) + " scalar, got " +
                           std::string(py::repr(a)) + " of type " +
                           std::string(py::str(py::type::of(a))));
    if (k == simt::A_F32) v.f32 = a.attr("item")().cast<float>();
    else v.f64 = py::isinstance<py::float_>(a) ? a.cast<double>() : a.attr("item")().cast<double>();
    return v;
  }
  bool is_int = py::isinstance<py::int_>(a) && !py::isinstance<py::bool_>(a);
  if (np_scalar) is_int = py::bool_(np.attr("issubdtype")(a.attr("dtype"), np.attr("integer")));
  if (!is_int)
    throw py::type_error(w + "must be an integer, got " + std::string(py::repr(a)));
  py::int_ iv = np_scalar ? py::int_(a.attr("item")()) : py::reinterpret_borrow<py::int_>(a);
  long long x;
  try {
    x = iv.cast<long long>();
  } catch (const py::cast_error&) {
    throw py::value_error(w + "is out of range");
  }
  if (k == simt::A_I32) {
    if (x < INT32_MIN || x > INT32_MAX) throw py::value_error(w + "is out of range");
    v.i32 = (std::int32_t)x;
  } else if (k == simt::A_U32) {
    if (x < 0 || x > (long long)UINT32_MAX) throw py::value_error(w + "is out of range");
    v.u32 = (std::uint32_t)x;
  } else {
    v.i64 = x;
  }
  return v;
}

void launch(const std::string& name, const py::object& grid, const py::object& block,
            const py::sequence& args, long long shared_mem, bool cooperative) {
  const simt::KernelInfo* k = simt::find_kernel(name);
  if (!k) throw py::key_error("no SIMT kernel named '" + name + "' (lockstep._simt.kernels() "
                              "lists them; is it exported with LS_EXPORT?)");
  simt::uint3 g = to_dim(grid, "grid"), b = to_dim(block, "block");
  unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
  if (nt > 1024)
    throw py::value_error(name + ": a block has at most 1024 threads, got " + std::to_string(nt));
  if (b.z > 64) throw py::value_error(name + ": blockDim.z is at most 64");
  unsigned long long nb = (unsigned long long)g.x * g.y * g.z;
  if (cooperative && nb > 1024)
    throw py::value_error(name + ": a cooperative launch on the emulator holds at most 1024 "
                          "resident blocks, got " + std::to_string(nb));
  if (shared_mem < 0 || shared_mem > (1LL << 30))
    throw py::value_error(name + ": shared_mem must be in [0, 2**30) bytes");
  if ((size_t)py::len(args) != k->kinds.size())
    throw py::type_error(name + " takes " + std::to_string(k->kinds.size()) + " arguments, got " +
                         std::to_string(py::len(args)));
  std::vector<simt::ArgVal> vals;
  std::vector<simt::ArgRange> ranges;
  for (size_t i = 0; i < k->kinds.size(); ++i) {
    vals.push_back(convert(name, i, k->kinds[i], args[i]));
    if (is_ptr(k->kinds[i]))
      ranges.push_back({reinterpret_cast<std::uintptr_t>(vals.back().ptr),
                        (size_t)py::reinterpret_borrow<py::array>(args[i]).nbytes(), (int)i});
  }
  std::string err;
  {
    py::gil_scoped_release nogil;  // args stay alive: the caller's sequence holds them
    try {
      simt::launch(*k, vals.data(), g, b, (size_t)shared_mem, cooperative, g_workers, ranges);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  if (!err.empty()) throw std::runtime_error("SIMT launch of " + name + " failed: " + err);
}

py::dict side_dict(const simt::GlobalSide& s) {
  py::dict d;
  d["requests"] = s.requests;
  d["sectors"] = s.sectors;
  d["min_sectors"] = s.min_sectors;
  d["bytes"] = s.bytes;
  d["unique_sectors"] = s.unique_sectors;
  return d;
}

py::dict shared_dict(const simt::SharedSide& s) {
  py::dict d;
  d["requests"] = s.requests;
  d["wavefronts"] = s.wavefronts;
  d["min_wavefronts"] = s.min_wavefronts;
  return d;
}

py::list take_counters() {
  static const char* kinds[simt::F_KINDS] = {"add", "mul", "div", "sqrt", "cmp"};
  py::list out;
  for (const simt::LaunchCount& c : simt::take_records()) {
    py::dict r;
    r["kernel"] = c.kernel;
    r["grid"] = py::make_tuple(c.grid.x, c.grid.y, c.grid.z);
    r["block"] = py::make_tuple(c.block.x, c.block.y, c.block.z);
    r["shared_mem"] = c.shared_mem;
    r["cooperative"] = c.cooperative;
    unsigned long long nb = (unsigned long long)c.grid.x * c.grid.y * c.grid.z;
    unsigned long long tpb = (unsigned long long)c.block.x * c.block.y * c.block.z;
    r["threads"] = nb * tpb;
    r["warps"] = nb * ((tpb + 31) / 32);
    py::dict g;
    g["load"] = side_dict(c.global[0]);
    g["store"] = side_dict(c.global[1]);
    r["global"] = g;
    py::list args;
    for (auto& kv : c.args) {
      py::dict a;
      a["index"] = kv.first;
      a["load"] = side_dict(kv.second.side[0]);
      a["store"] = side_dict(kv.second.side[1]);
      args.append(a);
    }
    r["args"] = args;
    py::dict sh;
    sh["load"] = shared_dict(c.shared[0]);
    sh["store"] = shared_dict(c.shared[1]);
    r["shared"] = sh;
    py::dict fl;
    for (int p = 0; p < 2; ++p) {
      py::dict d;
      for (int k = 0; k < simt::F_KINDS; ++k) d[kinds[k]] = c.flops.n[p][k];
      fl[p ? "f64" : "f32"] = d;
    }
    r["flops"] = fl;
    r["max_thread_flops"] = c.max_thread_flops;
    r["syncthreads"] = c.syncthreads;
    r["grid_syncs"] = c.grid_syncs;
    out.append(r);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_simt, m) {
  m.doc() = "Runs lockstep's cuda/*.cu kernels on the CPU (blocks on OS threads, threads as "
            "fibers)";
  m.def("launch", &launch, py::arg("name"), py::arg("grid"), py::arg("block"), py::arg("args"),
        py::arg("shared_mem") = 0, py::arg("cooperative") = false,
        "Run kernel `name` like CuPy's kernel(grid, block, args, shared_mem=...).");
  m.def("kernels", &simt::kernel_names, "Names of every registered kernel.");
  m.def("signature", [](const std::string& name) {
    const simt::KernelInfo* k = simt::find_kernel(name);
    if (!k) throw py::key_error("no SIMT kernel named '" + name + "'");
    std::vector<std::string> out;
    for (auto kk : k->kinds) out.push_back(kind_name(kk));
    return out;
  }, "The C++ parameter types of a kernel.");
  m.def("set_workers", [](unsigned n) {
    if (n < 1 || n > 256) throw py::value_error("workers must be in [1, 256]");
    g_workers = n;
  }, "OS threads that run the blocks of an ordinary launch (default 1).");
  m.def("workers", [] { return g_workers; });
  m.def("set_counting", [](bool on) { simt::set_counting(on); },
        "Record cost counters for every following launch (docs/cuda.md, 'Cost counters').");
  m.def("counting", [] { return simt::g_counting; });
  m.def("take_counters", &take_counters,
        "The counters of every launch since the last call, one dict per launch; clears them.");
  const char* env = std::getenv("LOCKSTEP_SIMT_COUNT");
  if (env && *env && std::string(env) != "0") simt::set_counting(true);
}
