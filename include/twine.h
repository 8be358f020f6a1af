/* SPDX-License-Identifier: MIT */
/*
 * twine: a Twisted-style networking framework in C. This umbrella header
 * includes the whole public API; each part lives in include/twine/.
 */
#ifndef TWINE_H
#define TWINE_H

#include <stdio.h>

#include <twine/common.h>
#include <twine/failure.h>
#include <twine/deferred.h>
#include <twine/concurrency.h>
#include <twine/log.h>
#include <twine/reactor.h>
#include <twine/fdwatch.h>
#include <twine/threadpool.h>
#include <twine/looping.h>
#include <twine/address.h>
#include <twine/protocol.h>
#include <twine/transport.h>
#include <twine/proxy.h>
#include <twine/listener.h>
#include <twine/line.h>
#include <twine/framing.h>
#include <twine/resolve.h>
#include <twine/connect.h>
#include <twine/endpoint.h>
#include <twine/tls.h>
#include <twine/reconnect.h>
#include <twine/process.h>
#include <twine/stdio.h>
#include <twine/policies.h>
#include <twine/plugin.h>
#include <twine/amp.h>
#include <twine/version.h>

#endif
