// The engine's entry points for the Python module (module.cpp).
#pragma once
#include <string>
#include <vector>

#include "simt.h"

namespace simt {
const KernelInfo* find_kernel(const std::string& name);
std::vector<std::string> kernel_names();
void launch(const KernelInfo& k, const ArgVal* args, uint3 grid, uint3 block, std::size_t smem,
            bool cooperative, unsigned workers);
}  // namespace simt
