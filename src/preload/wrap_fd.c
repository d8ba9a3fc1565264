/* SPDX-License-Identifier: MIT */
/* wrap_fd.c: being written (see preload.h). */
#include "preload/preload.h"
