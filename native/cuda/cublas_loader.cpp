// Finds and opens cuBLAS / cuBLASLt at run time (see cublas_loader.h for why and the search order).
// Plain C++: nothing here needs nvcc.
#include "cublas_loader.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

namespace dino::cuda {
namespace {

// Newest first: cuBLAS 13 matches the runtime we are built with; 12 also runs on a CUDA 13 driver.
const char* const kVersions[] = {"13", "12"};

// One place to try: libcublasLt and libcublas, either full paths or bare sonames for the system search
// (lt empty: libcublas finds its own). Or, with only `note` set, a place that had nothing to try, kept in
// order so that a failure report lists every place that was looked at.
struct Candidate {
  std::string lt;
  std::string blas;
  std::string note;
};

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::vector<std::string> glob_paths(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g;
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  globfree(&g);
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// Every site-packages directory a Python on this machine may have installed nvidia-cublas into. We do
// not run python (slow, and maybe the wrong one): the common prefixes cover pip --user, system and
// /usr/local installs, virtualenvs, conda and pyenv; PYTHONPATH entries are taken as they are.
std::vector<std::string> site_packages_dirs() {
  std::vector<std::string> patterns = {
      "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
      "/usr/lib/python3*/dist-packages",       "/usr/lib/python3*/site-packages",
      "/usr/lib64/python3*/site-packages",     "/opt/conda/lib/python3*/site-packages",
  };
  std::string home = env("HOME");
  if (!home.empty()) {
    patterns.push_back(home + "/.local/lib/python3*/site-packages");
    patterns.push_back(home + "/.pyenv/versions/*/lib/python3*/site-packages");
  }
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    std::string prefix = env(var);
    if (!prefix.empty()) patterns.push_back(prefix + "/lib/python3*/site-packages");
  }
  std::vector<std::string> dirs;
  std::string pythonpath = env("PYTHONPATH");
  for (size_t start = 0; start <= pythonpath.size();) {
    size_t end = pythonpath.find(':', start);
    if (end == std::string::npos) end = pythonpath.size();
    std::string entry = pythonpath.substr(start, end - start);
    if (!entry.empty() && is_dir(entry)) dirs.push_back(entry);
    start = end + 1;
  }
  for (const std::string& p : patterns) {
    for (const std::string& d : glob_paths(p)) dirs.push_back(d);
  }
  return dirs;
}

// The places to try, in order.
std::vector<Candidate> candidates() {
  std::vector<Candidate> out;
  auto note = [&](const std::string& text) { out.push_back({"", "", text}); };
  std::set<std::string> seen;  // real paths of the libcublas files already listed
  auto add_dir = [&](const std::string& dir) -> bool {
    bool found = false;
    for (const char* v : kVersions) {
      std::string blas = dir + "/libcublas.so." + v;
      if (exists(blas) && seen.insert(real_path(blas)).second) {
        // Without its Lt next to it, libcublas is left to find one itself.
        std::string lt = dir + "/libcublasLt.so." + v;
        out.push_back({exists(lt) ? lt : std::string(), blas, ""});
        found = true;
      }
    }
    return found;
  };

  std::string user = env("DINO_CUBLAS_PATH");
  if (user.empty()) {
    note("$DINO_CUBLAS_PATH: not set");
  } else if (is_dir(user)) {
    if (!add_dir(user)) note("$DINO_CUBLAS_PATH=" + user + ": no libcublas.so.13 or .12 there");
  } else if (exists(user)) {
    // A file: libcublas itself (libcublasLt is expected next to it), or libcublasLt by mistake.
    size_t slash = user.rfind('/');
    std::string dir = slash == std::string::npos ? "." : user.substr(0, slash);
    std::string base = slash == std::string::npos ? user : user.substr(slash + 1);
    if (base.rfind("libcublasLt", 0) == 0) base.erase(9, 2);
    std::string lt = base.rfind("libcublas", 0) == 0 ? dir + "/libcublasLt" + base.substr(9) : "";
    std::string blas = dir + "/" + base;
    if (!lt.empty() && !exists(lt)) lt.clear();  // then libcublas finds its own (its rpath is $ORIGIN)
    seen.insert(real_path(blas));
    out.push_back({lt, blas, ""});
  } else {
    note("$DINO_CUBLAS_PATH=" + user + ": does not exist");
  }

  for (const char* v : kVersions)
    out.push_back({std::string("libcublasLt.so.") + v, std::string("libcublas.so.") + v, ""});

  std::vector<std::string> cuda_dirs = {"/usr/local/cuda/lib64"};
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    std::string prefix = env(var);
    if (!prefix.empty()) cuda_dirs.push_back(prefix + "/lib64");
  }
  std::set<std::string> seen_cuda;
  for (const std::string& dir : cuda_dirs) {
    if (!seen_cuda.insert(real_path(dir)).second) continue;
    if (!add_dir(dir)) note(dir + ": no libcublas.so.13 or .12");
  }

  // PyTorch's CUDA 12 wheels put cuBLAS in nvidia/cublas/lib, the CUDA 13 ones in nvidia/cu13/lib.
  std::vector<std::string> searched;
  bool found = false;
  std::set<std::string> seen_sp;
  for (const std::string& sp : site_packages_dirs()) {
    if (!seen_sp.insert(real_path(sp)).second) continue;
    searched.push_back(sp);
    for (const char* v : kVersions) {
      for (const std::string& blas : glob_paths(sp + "/nvidia/*/lib/libcublas.so." + v)) {
        add_dir(blas.substr(0, blas.rfind('/')));
        found = true;
      }
    }
  }
  if (searched.empty()) {
    note("Python site-packages: none found");
  } else if (!found) {
    note("nvidia/*/lib/libcublas.so.13 or .12 in Python site-packages (" + join(searched, ", ") +
         "): none");
  }
  return out;
}

// dlerror() for a bare soname that is simply absent is long and says little; name the real cause.
std::string open_error(const std::string& name) {
  const char* e = dlerror();
  std::string msg = e ? e : "unknown error";
  if (name.find('/') == std::string::npos && msg.find("No such file") != std::string::npos)
    return name + ": not in the system library path";
  return msg;
}

// Resolves every function; on a missing required one returns its name.
const char* resolve(void* blas, void* lt, CublasApi* api) {
#define DINO_RESOLVE(handle, name, required)                                         \
  api->name = reinterpret_cast<decltype(api->name)>(dlsym(handle, #name));           \
  if (!api->name && required) return #name;
  DINO_RESOLVE(blas, cublasCreate_v2, true)
  DINO_RESOLVE(blas, cublasDestroy_v2, true)
  DINO_RESOLVE(blas, cublasSetStream_v2, true)
  DINO_RESOLVE(blas, cublasSetMathMode, true)
  DINO_RESOLVE(blas, cublasSetWorkspace_v2, false)
  DINO_RESOLVE(blas, cublasGemmEx, true)
  DINO_RESOLVE(blas, cublasGemmStridedBatchedEx, true)
  DINO_RESOLVE(blas, cublasGetStatusString, false)
  DINO_RESOLVE(blas, cublasSscal_v2, true)
  DINO_RESOLVE(lt, cublasLtCreate, true)
  DINO_RESOLVE(lt, cublasLtDestroy, true)
  DINO_RESOLVE(lt, cublasLtMatmul, true)
  DINO_RESOLVE(lt, cublasLtMatmulDescCreate, true)
  DINO_RESOLVE(lt, cublasLtMatmulDescDestroy, true)
  DINO_RESOLVE(lt, cublasLtMatmulDescSetAttribute, true)
  DINO_RESOLVE(lt, cublasLtMatrixLayoutCreate, true)
  DINO_RESOLVE(lt, cublasLtMatrixLayoutDestroy, true)
  DINO_RESOLVE(lt, cublasLtMatrixLayoutSetAttribute, true)
  DINO_RESOLVE(lt, cublasLtMatmulPreferenceCreate, true)
  DINO_RESOLVE(lt, cublasLtMatmulPreferenceDestroy, true)
  DINO_RESOLVE(lt, cublasLtMatmulPreferenceSetAttribute, true)
  DINO_RESOLVE(lt, cublasLtMatmulAlgoGetHeuristic, true)
  DINO_RESOLVE(lt, cublasLtGetVersion, false)
#undef DINO_RESOLVE
  return nullptr;
}

// The library's own file name, as the dynamic linker resolved it (for bare sonames).
std::string loaded_path(void* symbol, const std::string& fallback) {
  Dl_info info;
  if (symbol && dladdr(symbol, &info) && info.dli_fname) return info.dli_fname;
  return fallback;
}

struct Loaded {
  CublasApi api;
  bool ok = false;
  std::string why;
};

Loaded load() {
  Loaded r;
#ifdef DINO_CUDA_EMULATION
  // The emulated build has no library to open: its reference implementations stand in.
  fill_emulated_cublas(&r.api);
  r.ok = true;
  return r;
#endif
  std::vector<std::string> tried;
  for (const Candidate& c : candidates()) {
    if (c.blas.empty()) {
      tried.push_back(c.note);
      continue;
    }
    // libcublas needs libcublasLt.so.N. Opening Lt first by its full path makes that dependency resolve
    // to this file (the dynamic linker matches an already-loaded soname) even where nothing else would
    // find it. RTLD_LOCAL keeps cuBLAS's symbols out of the process's global namespace.
    void* lt = nullptr;
    if (!c.lt.empty()) {
      lt = dlopen(c.lt.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lt) {
        tried.push_back(open_error(c.lt));
        continue;
      }
    }
    void* blas = dlopen(c.blas.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!blas) {
      tried.push_back(open_error(c.blas));
      if (lt) dlclose(lt);
      continue;
    }
    // Without a separate Lt handle, dlsym on libcublas also searches its dependencies, Lt among them.
    const char* missing = resolve(blas, lt ? lt : blas, &r.api);
    if (missing) {
      tried.push_back(c.blas + ": has no " + missing + " (too old?)");
      dlclose(blas);
      if (lt) dlclose(lt);
      continue;
    }
    // Both stay open for the life of the process: cuBLAS registers exit handlers of its own.
    r.api.path = loaded_path(reinterpret_cast<void*>(r.api.cublasCreate_v2), c.blas);
    r.api.lt_path = loaded_path(reinterpret_cast<void*>(r.api.cublasLtCreate), c.lt);
    if (r.api.cublasLtGetVersion) {
      size_t v = r.api.cublasLtGetVersion();  // major * 10000 + minor * 100 + patch
      r.api.version = str(v / 10000, ".", v / 100 % 100, ".", v % 100);
    }
    r.ok = true;
    return r;
  }
  r.why = "cuBLAS not found; tried " + join(tried, "; ") +
          ". Install it (pip install nvidia-cublas) or set DINO_CUBLAS_PATH to the directory holding "
          "libcublas.so.13 and libcublasLt.so.13";
  return r;
}

}  // namespace

const CublasApi* cublas_api(std::string* why) {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

std::string cublas_search_report() {
  std::vector<std::string> steps;
  bool found = false;
  for (const Candidate& c : candidates()) {
    if (c.blas.empty()) {
      steps.push_back(c.note);
    } else if (c.blas.find('/') == std::string::npos) {
      steps.push_back(c.blas + " through the system library path: not tried");
    } else {
      steps.push_back("found " + c.blas);
      found = true;
    }
  }
  return join(steps, "; ") + (found ? "" : "; no cuBLAS file found");
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

Status cublas_error(cublasStatus_t s, const char* what) {
  // "api->cublasLtMatmul(handle, ...)" -> "cublasLtMatmul": the arguments mean nothing to the user.
  std::string call(what);
  size_t paren = call.find('(');
  if (paren != std::string::npos) call.resize(paren);
  size_t arrow = call.rfind("->");
  if (arrow != std::string::npos) call.erase(0, arrow + 2);
  std::string detail;
  std::string why;
  if (const CublasApi* api = cublas_api(&why); api && api->cublasGetStatusString)
    detail = str(" (", api->cublasGetStatusString(s), ")");
  return Status(s == CUBLAS_STATUS_ALLOC_FAILED ? Code::kOutOfMemory : Code::kDeviceError,
                str(call, ": ", cublas_status_name(s), detail));
}

}  // namespace dino::cuda
