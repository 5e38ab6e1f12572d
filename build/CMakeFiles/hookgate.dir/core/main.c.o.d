CMakeFiles/hookgate.dir/core/main.c.o: /work/main/core/main.c \
 /usr/include/stdc-predef.h
