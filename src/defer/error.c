/* SPDX-License-Identifier: MIT */
/*
 * Error codes: one table of sentences for twine's own codes; errno values
 * defer to strerror(). The sentences are what operators read in logs.
 */
#include "config.h"

#include <string.h>
#include <twine/common.h>

TW_API const char *tw_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case TW_EALREADY_FIRED:
        return "deferred was already fired";
    case TW_ECANCELLED:
        return "operation was cancelled";
    case TW_ETIMEDOUT:
        return "operation timed out";
    case TW_EDONE:
        return "connection was closed cleanly";
    case TW_ECONNLOST:
        return "connection was lost";
    case TW_EABORTED:
        return "connection was aborted";
    case TW_ESTATE:
        return "object is not in a state that allows this";
    case TW_EPROTO:
        return "peer violated the protocol";
    case TW_ETOOBIG:
        return "message is too long";
    case TW_EREMOTE:
        return "remote side reported an error";
    case TW_EFAIL:
        return "operation failed";
    case TW_ESHUTDOWN:
        return "reactor is shutting down";
    case TW_EIDLE:
        return "connection was idle too long";
    case TW_ENOTFOUND:
        return "host name not found";
    case TW_EOVERFLOW:
        return "queue is full";
    case TW_EUNDERFLOW:
        return "too many getters wait on the queue";
    case TW_ETLS:
        return "TLS handshake or record failed";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code); /* glibc's table is static and thread-safe */
    return "unknown error";
}
