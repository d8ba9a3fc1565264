/* SPDX-License-Identifier: MIT */
/* wrap_proc.c: being written (see preload.h). */
#include "preload/preload.h"
