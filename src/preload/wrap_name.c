/* SPDX-License-Identifier: MIT */
/* wrap_name.c: being written (see preload.h). */
#include "preload/preload.h"
