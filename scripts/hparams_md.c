/* hparams_md.c — prints docs/hyperparameters.md (td_hparams_markdown: the catalogue of
 * GET /v1/models as Markdown). `make docs` runs it; the docs suite checks the file. */
#include <stdio.h>
#include <stdlib.h>

#include "http/catalog.h"

int main(void)
{
    char *md = td_hparams_markdown();
    if (!md || fputs(md, stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "hparams_md: out of memory or write error\n");
        return 1;
    }
    free(md);
    return 0;
}
