// Build-time helper: turns a Lua source file into a C++ file that defines
// `extern const char NAME[]` (NUL-terminated) and `extern const size_t
// NAME_len`, so the Lua parts of net.co and net.ngx live inside net.so.
//   embed_lua INPUT OUTPUT NAME
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: embed_lua INPUT OUTPUT NAME\n");
    return 2;
  }
  std::FILE* in = std::fopen(argv[1], "rb");
  if (!in) {
    std::perror(argv[1]);
    return 1;
  }
  std::FILE* out = std::fopen(argv[2], "wb");
  if (!out) {
    std::perror(argv[2]);
    std::fclose(in);
    return 1;
  }
  std::fprintf(out, "// Generated from %s by embed_lua: do not edit.\n#include <cstddef>\n", argv[1]);
  std::fprintf(out, "namespace lnet {\nextern const char %s[];\nextern const size_t %s_len;\n",
               argv[3], argv[3]);
  std::fprintf(out, "const char %s[] = {\n", argv[3]);
  size_t n = 0;
  int ch;
  while ((ch = std::fgetc(in)) != EOF) {
    std::fprintf(out, "%d,", static_cast<signed char>(ch));
    if (++n % 24 == 0) std::fputc('\n', out);
  }
  std::fprintf(out, "0};\nconst size_t %s_len = %zu;\n}  // namespace lnet\n", argv[3], n);
  bool ok = !std::ferror(in) && !std::ferror(out);
  std::fclose(in);
  if (std::fclose(out) != 0) ok = false;
  return ok ? 0 : 1;
}
