/* main.c — placeholder until the daemon lands (issue 3). */
#include <stdio.h>
int main(void) { puts("traind " TD_VERSION); return 0; }
