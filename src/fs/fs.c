/* SPDX-License-Identifier: MIT */
/* fs.c: being written (see zvfs/fs.h). */
#include "zvfs/fs.h"
