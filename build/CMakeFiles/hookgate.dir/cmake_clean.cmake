file(REMOVE_RECURSE
  "CMakeFiles/hookgate.dir/core/main.c.o"
  "CMakeFiles/hookgate.dir/core/main.c.o.d"
  "hookgate"
  "hookgate.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/hookgate.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
