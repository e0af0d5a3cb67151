// connpool-sim: the one place the engine's inputs touch the file system (a hold histogram,
// a --config file). The browser build (web/) defines CONNPOOL_SIM_NO_FILES: wasm32-wasi's
// libc++ has no file streams, and a page has no files to read.
#ifndef CONNPOOL_TOOLS_SIM_FILES_HPP
#define CONNPOOL_TOOLS_SIM_FILES_HPP

#include <stdexcept>
#include <string>

#if !defined(CONNPOOL_SIM_NO_FILES)
#include <fstream>
#include <sstream>
#endif

namespace connpool::sim {

// The whole file; what names the file says what it was for ("hold histogram", "config").
inline std::string read_text_file(const std::string& path, const char* what) {
#if defined(CONNPOOL_SIM_NO_FILES)
    throw std::invalid_argument(std::string("cannot read ") + what + " '" + path + "': no files in this build");
#else
    std::ifstream in(path);
    if (!in) throw std::invalid_argument(std::string("cannot read ") + what + " '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
#endif
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_FILES_HPP
