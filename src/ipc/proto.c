/* SPDX-License-Identifier: MIT */
/* proto.c: being written (see ipc/proto.h). */
#include "ipc/proto.h"
