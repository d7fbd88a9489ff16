// smtpsh.sys: the few facts about the process scripts need and plain Lua lacks: whether a
// standard stream is a terminal (colour), and the process's resource use (the process_*
// metrics of `smtpsh watch`). The host name is smtpcore.hostname.
#include "bindings/host_modules.hpp"
#include "bindings/modules.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace smtpsh::lua {

namespace {

// sys.isatty("stdin" | "stdout" | "stderr") -> boolean
int sys_isatty(lua_State* L) {
  static const char* const names[] = {"stdin", "stdout", "stderr", nullptr};
  int fd = luaL_checkoption(L, 1, nullptr, names);
  lua_pushboolean(L, isatty(fd) == 1);
  return 1;
}

// When this module was first loaded: the process's start, near enough for a metric.
const double loaded_at =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

// Descriptors open now: the entries of /proc/self/fd, less the one opendir holds; -1 where
// there is no /proc.
lua_Integer open_descriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  lua_Integer count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;
}

// Resident memory now (not the peak that getrusage gives): /proc/self/statm's second field.
lua_Integer resident_bytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return -1;
  long long pages_total = 0;
  long long pages_resident = 0;
  int got = std::fscanf(file, "%lld %lld", &pages_total, &pages_resident);
  std::fclose(file);
  if (got != 2) return -1;
  return static_cast<lua_Integer>(pages_resident * sysconf(_SC_PAGESIZE));
}

// sys.process() -> {cpu_seconds, resident_bytes, open_fds, max_fds, start_time}; a field the
// system cannot tell is -1.
int sys_process(lua_State* L) {
  lua_createtable(L, 0, 5);
  rusage usage{};
  double cpu = -1;
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  lua_pushnumber(L, cpu);
  lua_setfield(L, -2, "cpu_seconds");
  lua_pushinteger(L, resident_bytes());
  lua_setfield(L, -2, "resident_bytes");
  lua_pushinteger(L, open_descriptors());
  lua_setfield(L, -2, "open_fds");
  rlimit limit{};
  lua_Integer max_fds = -1;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    max_fds = static_cast<lua_Integer>(limit.rlim_cur);
  lua_pushinteger(L, max_fds);
  lua_setfield(L, -2, "max_fds");
  lua_pushnumber(L, loaded_at);
  lua_setfield(L, -2, "start_time");
  return 1;
}

const luaL_Reg sys_functions[] = {
    {"isatty", sys_isatty},
    {"process", sys_process},
    {"host_module", sys_host_module},  // bindings/host_modules.cpp
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_sys(lua_State* L) {
  luaL_newlib(L, smtpsh::lua::sys_functions);
  lua_pushliteral(L, SMTPSH_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
