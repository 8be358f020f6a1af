/* SPDX-License-Identifier: MIT */
/*
 * AMP, the Asynchronous Messaging Protocol, byte-compatible with Twisted's
 * twisted.protocols.amp: either side of a connection sends commands and
 * answers them, any number in flight at once, each one a box.
 *
 * Wire format. A box is a sequence of key/value pairs, each written as
 * [u16 big-endian key length][key][u16 big-endian value length][value], and
 * ends with two zero bytes (a key of length 0). Keys are 1-255 bytes, values
 * 0-65535 bytes. Keys may arrive in any order (a repeated key keeps its last
 * value, as a Python dict does); twine writes them sorted bytewise, exactly
 * as Twisted's AmpBox.serialize() does, so the same box always gives the
 * same bytes.
 *
 * Protocol keys. A request carries _command (the command name) and, when it
 * wants an answer, _ask (a tag; twine, like Twisted, counts 1, 2, ... in
 * lower-case hexadecimal). The answer carries _answer with the same tag and
 * the response values; an error carries _error with the tag, _error_code and
 * _error_description. A box with none of _command, _answer and _error (an
 * empty box too), a key longer than 255 bytes, or a box larger than the
 * connection's limit (TW_AMP_DEFAULT_MAX_BOX_SIZE; Twisted has none) makes
 * twine log the reason under "amp" and close the connection.
 *
 * Dispatch rules, those of Twisted's BoxDispatcher and CommandLocator:
 *   - an unknown command is answered with _error_code UNHANDLED and the
 *     description "Unhandled Command: b'NAME'" (Python's repr of the name);
 *     the connection stays open;
 *   - a responder's failure made with tw_amp_error_new() is answered with
 *     its code and description, and the connection stays open: when the
 *     command declares the code, an empty description is replaced by the
 *     declared one and a fatal declaration closes the connection after the
 *     answer; a code the command does not declare passes through as it is,
 *     as Twisted passes a RemoteAmpError raised by a responder;
 *   - arguments that do not decode (a missing required one, "notanumber"
 *     for an Integer), any other failure, or a response that does not encode
 *     against the declared response, are logged and answered with UNKNOWN /
 *     "Unknown Error", and then the connection is closed;
 *   - a request without _ask gets no answer at all; if it fails (an unknown
 *     command included) the failure is logged and the connection is closed,
 *     as Twisted's unhandledError does;
 *   - an _answer or _error whose tag matches no outstanding call, or an
 *     _error without _error_code and _error_description, closes the
 *     connection (in Twisted a KeyError escapes dataReceived).
 * Once twine decided to close a connection, the boxes that followed in the
 * same read are not dispatched.
 *
 * Argument types, with Twisted's encodings:
 *   Integer  ASCII decimal, of any size, as Python's int. It decodes what
 *            Python's int() accepts (surrounding ASCII whitespace, a sign,
 *            single underscores between digits, leading zeros). A value
 *            within int64_t is a TW_AMP_INTEGER; one outside it a
 *            TW_AMP_BIG_INTEGER holding its canonical decimal text ("-"
 *            and digits without leading zeros), so int64_t users read it
 *            with tw_amp_values_get_integer(), which reports -ERANGE for
 *            a big one, and others with tw_amp_values_get_integer_text().
 *            (Python refuses more than 4300 digits by default; twine takes
 *            any number that fits in a value.)
 *   String   raw bytes, unchanged.
 *   Unicode  UTF-8, validated strictly (no overlong forms, no surrogates,
 *            nothing past U+10FFFF) both ways.
 *   Boolean  exactly "True" or "False".
 *   Float    Python's repr(): "1.0", "0.1", "1e+100", "-0.0", "inf", "-inf",
 *            "nan", the shortest digits that read back to the same double;
 *            decoding accepts what Python's float() accepts.
 *   Decimal  Python's str() of a decimal.Decimal: "1.50", "1E+2", "-0",
 *            "0E-7", "Infinity", "-NaN12", "sNaN". twine keeps the text
 *            (digits are exact, of any length): it decodes what
 *            decimal.Decimal() accepts and holds and sends the canonical
 *            str() form, so a value always encodes as Twisted encodes it.
 *   DateTime "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM", 32 bytes, as a
 *            tw_amp_datetime with its UTC offset in minutes; an offset of
 *            0 is written "-00:00", as Twisted writes it. Decoding reads
 *            the fields where Twisted reads them, with int()'s rules, and
 *            checks them as Python's datetime does; an offset of 24 hours
 *            or more, which Python accepts but cannot use, is refused.
 *   Path     a file path as UTF-8 text (Twisted's FilePath, which makes it
 *            absolute on the Python side); twine refuses a NUL byte in it.
 *   ListOf(T) the elements' encodings, each with a u16 big-endian length,
 *            concatenated. As in Twisted, trailing bytes too short to hold
 *            a complete element are ignored.
 *   AmpList(fields) a list of value sets, each encoded as a box against
 *            @c fields (sorted keys, end marker) and concatenated. As in
 *            Twisted, a trailing incomplete box is ignored, and a key over
 *            255 bytes or a row missing a required field does not decode.
 *            Each row decodes to its own tw_amp_values (a few hundred
 *            bytes), so a 64 KiB value of empty rows (fields all optional)
 *            takes about 12 MB while its request is handled: bound what an
 *            untrusted peer may send with tw_amp_factory_set_limits().
 * An optional argument that has no value is left out of the box.
 *
 * Values handed to and from C code are tw_amp_value / tw_amp_values (a map
 * from names to typed values); the raw boxes are tw_amp_box.
 *
 * Adding commands to reactord's amp module. `reactord --protocol amp`
 * serves the built-in commands (Echo, Sum, Divide, Time, Delay) from a
 * factory made with tw_amp_factory_new(). Another module adds its own
 * commands to the same connections with tw_amp_register() on the
 * dispatcher of that factory, tw_amp_factory_dispatcher(factory), before or
 * while it serves. A module of type TW_PLUGIN_AMP_COMMANDS does it from its
 * context's register_commands (plugin.h), which reactord calls with that
 * dispatcher for each `--amp-commands NAME`.
 *
 * Protocol switches (Twisted's ProtocolSwitchCommand): a command declared
 * with protocol_switch makes its successful answer the last AMP box of the
 * connection. The responder names the protocol to switch to
 * (tw_amp_switch_to()), the caller the factory that builds its own
 * (tw_amp_call_switch()); each side hands the transport over once the
 * answer is written or read, with the bytes that followed it, and sends no
 * AMP box from the moment the switch is decided (the caller: from the
 * call). tw_amp_switched_protocol() finds the protocol switched to.
 *
 * Writes. Boxes sent while one read from the peer is being processed (the
 * answers of responders that answer at once, above all) are gathered and
 * written together when the read is done, so a peer that pipelines costs one
 * write per read rather than one per box. To close a connection from inside
 * a responder or a call's callback, use tw_amp_lose_connection(), which
 * writes what was gathered first: tw_transport_lose_connection() on the
 * transport itself would drop it.
 */
#ifndef TWINE_AMP_H
#define TWINE_AMP_H

#include <stddef.h>
#include <stdint.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/failure.h>
#include <twine/protocol.h>
#include <twine/tls.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

/** The longest key, in bytes. */
#define TW_AMP_MAX_KEY_LENGTH 255
/** The longest value, in bytes. */
#define TW_AMP_MAX_VALUE_LENGTH 65535
/**
 * The most keys a received box may hold. A box's keys are its command's
 * arguments or answer fields; a peer that sends more breaks the connection
 * (TW_ETOOBIG), so no box costs more than this many entries to parse.
 */
#define TW_AMP_MAX_KEYS 4096
/** The default bound on one received box, counting every byte of it. */
#define TW_AMP_DEFAULT_MAX_BOX_SIZE (1024 * 1024)
/**
 * The default number of received requests whose responders may be running
 * on one connection before twine stops reading from it.
 */
#define TW_AMP_DEFAULT_MAX_PENDING 1024

/* ======================================================== boxes */

/** A box: a set of byte keys (1-255 bytes) with byte values (0-65535). */
typedef struct tw_amp_box tw_amp_box;

/** @return an empty box owned by the caller, or NULL when memory runs out. */
TW_API tw_amp_box *tw_amp_box_new(void);

/** Free a box. NULL is ignored. */
TW_API void tw_amp_box_free(tw_amp_box *b);

/**
 * Set @p key to @p value, replacing a previous value. Both are copied.
 * @return 0; -EINVAL for a key of 0 or more than 255 bytes; TW_ETOOBIG for
 *         a value over 65535 bytes; -ENOMEM (the box is unchanged).
 */
TW_API int tw_amp_box_set(tw_amp_box *b, const void *key, size_t keylen, const void *value,
                          size_t valuelen);

/** tw_amp_box_set() with NUL-terminated key and value. @return as tw_amp_box_set(). */
TW_API int tw_amp_box_set_str(tw_amp_box *b, const char *key, const char *value);

/**
 * Look @p key up.
 * @param len if not NULL, receives the value's length.
 * @return the value, borrowed from the box until it changes, followed by a
 *         NUL byte so text can be used as a C string; NULL when absent.
 */
TW_API const char *tw_amp_box_getn(const tw_amp_box *b, const void *key, size_t keylen,
                                   size_t *len);

/** tw_amp_box_getn() with a NUL-terminated key. */
TW_API const char *tw_amp_box_get(const tw_amp_box *b, const char *key, size_t *len);

/** Remove @p key. @return 0, or -ENOENT when it was absent. */
TW_API int tw_amp_box_remove(tw_amp_box *b, const char *key);

/** @return the number of keys. */
TW_API size_t tw_amp_box_count(const tw_amp_box *b);

/**
 * The @p i-th entry in sorted key order (the order it is encoded in).
 * Pointers are borrowed until the box changes; both are NUL-terminated.
 * @return 0, or -ENOENT past the end.
 */
TW_API int tw_amp_box_entry(const tw_amp_box *b, size_t i, const char **key, size_t *keylen,
                            const char **value, size_t *valuelen);

/** @return the number of bytes tw_amp_box_encode() writes, end marker included. */
TW_API size_t tw_amp_box_encoded_size(const tw_amp_box *b);

/**
 * Encode @p b with its keys sorted, as Twisted does.
 * @return the encoded size; the bytes were written only if it is at most
 *         @p cap (so a short buffer can be detected, as with snprintf).
 */
TW_API size_t tw_amp_box_encode(const tw_amp_box *b, void *buf, size_t cap);

/* ======================================================== parser */

/** An incremental, bounded box parser: bytes in, complete boxes out. */
typedef struct tw_amp_parser tw_amp_parser;

/**
 * Receives one complete box, which it now owns (free it with
 * tw_amp_box_free()). @return 0 to go on parsing, anything else to stop:
 * tw_amp_parser_feed() then returns that value at once.
 */
typedef int (*tw_amp_box_fn)(tw_amp_box *box, void *arg);

/**
 * Make a parser.
 * @param max_box_size the most bytes one box may take on the wire, end
 *        marker included; 0 means TW_AMP_DEFAULT_MAX_BOX_SIZE. Nothing is
 *        allocated for a value before its length was checked against it.
 * @return the parser, owned by the caller, or NULL when memory runs out.
 */
TW_API tw_amp_parser *tw_amp_parser_new(size_t max_box_size);

/** Free a parser and any partial box. NULL is ignored. */
TW_API void tw_amp_parser_free(tw_amp_parser *p);

/**
 * Parse @p len bytes, calling @p fn synchronously for each box they
 * complete, however the stream was split. @p data is only read during the
 * call. Parsing a box costs time linear in its size whatever the order of
 * its keys (those out of order are sorted once, when the box is complete).
 * @param consumed if not NULL, receives how many bytes were used (all of
 *        them unless @p fn stopped the parse or an error occurred).
 * @return 0; the nonzero value @p fn returned; TW_EPROTO for a key longer
 *         than 255 bytes; TW_ETOOBIG for a box over the size limit or with
 *         more than TW_AMP_MAX_KEYS keys; -ENOMEM.
 *         The three errors leave the parser broken: it refuses everything
 *         after with the same code, and tw_amp_parser_error() says why.
 */
TW_API int tw_amp_parser_feed(tw_amp_parser *p, const void *data, size_t len, tw_amp_box_fn fn,
                              void *arg, size_t *consumed);

/** @return one sentence on why the parser broke, or "" while it is not broken. */
TW_API const char *tw_amp_parser_error(const tw_amp_parser *p);

/** @return the bytes the parser holds for a partial box, to check it stays bounded. */
TW_API size_t tw_amp_parser_buffered(const tw_amp_parser *p);

/* ======================================================== types and values */

/** The argument types. */
typedef enum tw_amp_kind {
    TW_AMP_INTEGER = 1, /**< int64_t, ASCII decimal */
    TW_AMP_STRING,      /**< raw bytes */
    TW_AMP_UNICODE,     /**< UTF-8 text */
    TW_AMP_BOOLEAN,     /**< "True" / "False" */
    TW_AMP_FLOAT,       /**< double, Python repr() */
    TW_AMP_LIST,        /**< ListOf(element) */
    TW_AMP_DECIMAL,     /**< decimal.Decimal, as its canonical text */
    TW_AMP_DATETIME,    /**< tw_amp_datetime */
    TW_AMP_PATH,        /**< a file path, UTF-8 */
    TW_AMP_AMPLIST,     /**< AmpList: value sets; the type is a tw_amp_amplist_type base */
    /**
     * Only a value's kind, never a type's: an Integer outside int64_t, as
     * its canonical decimal text. The Integer type encodes and decodes it.
     */
    TW_AMP_BIG_INTEGER
} tw_amp_kind;

/** A type: a kind, and for lists the element type. */
typedef struct tw_amp_type {
    tw_amp_kind kind;
    const struct tw_amp_type *element; /**< TW_AMP_LIST only */
} tw_amp_type;

/**
 * An AmpList type: its base (kind TW_AMP_AMPLIST, no element), which is
 * what command descriptions point to, and the fields of each row.
 */
typedef struct tw_amp_amplist_type {
    tw_amp_type base;                /**< {TW_AMP_AMPLIST, NULL} */
    const struct tw_amp_arg *fields; /**< NULL-name-terminated */
} tw_amp_amplist_type;

/** The scalar types, shared constants of the library. */
TW_API extern const tw_amp_type tw_amp_type_integer;
TW_API extern const tw_amp_type tw_amp_type_string;
TW_API extern const tw_amp_type tw_amp_type_unicode;
TW_API extern const tw_amp_type tw_amp_type_boolean;
TW_API extern const tw_amp_type tw_amp_type_float;
TW_API extern const tw_amp_type tw_amp_type_decimal;
TW_API extern const tw_amp_type tw_amp_type_datetime;
TW_API extern const tw_amp_type tw_amp_type_path;

/*
 * Type constants for command descriptions, e.g.
 *     {"values", TW_AMP_LIST_OF(TW_AMP_T_INTEGER), 0}
 * The scalar ones are addresses of the constants above and work anywhere.
 * TW_AMP_LIST_OF and TW_AMP_AMPLIST_OF are compound literals, which live
 * as long as the program only at file scope -- where command descriptions
 * belong; inside a function, define a static tw_amp_type
 * {TW_AMP_LIST, element}, or a static tw_amp_amplist_type
 * {{TW_AMP_AMPLIST, NULL}, fields} and use &its.base, instead.
 */
#define TW_AMP_T_INTEGER (&tw_amp_type_integer)
#define TW_AMP_T_STRING (&tw_amp_type_string)
#define TW_AMP_T_UNICODE (&tw_amp_type_unicode)
#define TW_AMP_T_BOOLEAN (&tw_amp_type_boolean)
#define TW_AMP_T_FLOAT (&tw_amp_type_float)
#define TW_AMP_T_DECIMAL (&tw_amp_type_decimal)
#define TW_AMP_T_DATETIME (&tw_amp_type_datetime)
#define TW_AMP_T_PATH (&tw_amp_type_path)
#define TW_AMP_LIST_OF(element_type) (&(const tw_amp_type){TW_AMP_LIST, (element_type)})
#define TW_AMP_AMPLIST_OF(field_args)                                                           \
    (&(const tw_amp_amplist_type){{TW_AMP_AMPLIST, NULL}, (field_args)}.base)

/**
 * A DateTime: a date and time of day in the Gregorian calendar, with a
 * fixed offset from UTC, as Python's datetime with a tzinfo carries it.
 */
typedef struct tw_amp_datetime {
    int16_t year;        /**< 1-9999 */
    uint8_t month;       /**< 1-12 */
    uint8_t day;         /**< 1 to the month's last day */
    uint8_t hour;        /**< 0-23 */
    uint8_t minute;      /**< 0-59 */
    uint8_t second;      /**< 0-59 */
    int32_t microsecond; /**< 0-999999 */
    int16_t utc_offset;  /**< minutes east of UTC, -1439 to 1439 */
} tw_amp_datetime;

/** A set of named values: a command's arguments or response. */
typedef struct tw_amp_values tw_amp_values;

/**
 * A typed value. Values a caller builds are only read by twine (it copies
 * them); values twine decodes are owned by their tw_amp_values.
 */
typedef struct tw_amp_value {
    tw_amp_kind kind;
    union {
        int64_t integer; /**< TW_AMP_INTEGER */
        double number;   /**< TW_AMP_FLOAT */
        int boolean;     /**< TW_AMP_BOOLEAN: 0 or 1 */
        struct {
            const char *data; /**< decoded values are followed by a NUL byte */
            size_t len;
        } bytes; /**< STRING, UNICODE, PATH, DECIMAL and BIG_INTEGER (its text) */
        struct {
            const struct tw_amp_value *items;
            size_t count;
        } list; /**< TW_AMP_LIST */
        struct {
            const tw_amp_values *const *items;
            size_t count;
        } rows;                   /**< TW_AMP_AMPLIST: one set per row */
        tw_amp_datetime datetime; /**< TW_AMP_DATETIME */
    } u;
} tw_amp_value;

/** @return an empty set owned by the caller, or NULL when memory runs out. */
TW_API tw_amp_values *tw_amp_values_new(void);

/** Free a set and every value in it. NULL is ignored. */
TW_API void tw_amp_values_free(tw_amp_values *v);

/**
 * Set @p name to a deep copy of @p value, replacing a previous one.
 * @return 0; -EINVAL for an empty name or a malformed value (an unknown
 *         kind, a list whose items differ in kind); -ENOMEM (unchanged).
 */
TW_API int tw_amp_values_set(tw_amp_values *v, const char *name, const tw_amp_value *value);

/** Set an Integer. @return as tw_amp_values_set(). */
TW_API int tw_amp_values_set_integer(tw_amp_values *v, const char *name, int64_t value);
/** Set a String of @p len raw bytes. @return as tw_amp_values_set(). */
TW_API int tw_amp_values_set_string(tw_amp_values *v, const char *name, const void *data,
                                    size_t len);
/** Set a Unicode from NUL-terminated UTF-8 (validated when encoded). @return as set(). */
TW_API int tw_amp_values_set_unicode(tw_amp_values *v, const char *name, const char *text);
/** Set a Boolean (any nonzero is true). @return as tw_amp_values_set(). */
TW_API int tw_amp_values_set_boolean(tw_amp_values *v, const char *name, int value);
/** Set a Float. @return as tw_amp_values_set(). */
TW_API int tw_amp_values_set_float(tw_amp_values *v, const char *name, double value);
/**
 * Set an Integer of any size from its decimal text, as Python's int()
 * reads it ("12", " -0_1 ", "123456789012345678901234567890"): a
 * TW_AMP_INTEGER within int64_t, else a TW_AMP_BIG_INTEGER holding the
 * canonical text. @return as tw_amp_values_set(); -EINVAL also for text
 * int() refuses or longer than a value (65535 bytes).
 */
TW_API int tw_amp_values_set_integer_text(tw_amp_values *v, const char *name, const char *text);
/**
 * Set a Decimal from text decimal.Decimal() accepts ("1.50", "-1e3", "nan",
 * "sNaN"); the canonical str() form is kept. @return as tw_amp_values_set();
 * -EINVAL also for text Decimal() refuses or longer than a value.
 */
TW_API int tw_amp_values_set_decimal(tw_amp_values *v, const char *name, const char *text);
/**
 * Set a DateTime (copied; checked when encoded). @return as
 * tw_amp_values_set().
 */
TW_API int tw_amp_values_set_datetime(tw_amp_values *v, const char *name,
                                      const tw_amp_datetime *value);
/** Set a Path from NUL-terminated UTF-8 (validated when encoded). @return as set(). */
TW_API int tw_amp_values_set_path(tw_amp_values *v, const char *name, const char *path);
/**
 * Set an AmpList of @p count rows, each a deep copy of @p rows[i] (borrowed
 * during the call). @return as tw_amp_values_set().
 */
TW_API int tw_amp_values_set_amplist(tw_amp_values *v, const char *name,
                                     const tw_amp_values *const *rows, size_t count);

/** @return the value called @p name (borrowed from @p v), or NULL. */
TW_API const tw_amp_value *tw_amp_values_get(const tw_amp_values *v, const char *name);

/**
 * Read an Integer within int64_t.
 * @return 0, -ENOENT when absent, -EINVAL for another kind, -ERANGE for an
 *         Integer outside int64_t (a TW_AMP_BIG_INTEGER; @p out unchanged).
 */
TW_API int tw_amp_values_get_integer(const tw_amp_values *v, const char *name, int64_t *out);
/**
 * Write the decimal text of an Integer of any size into @p buf, with a NUL,
 * if it fits in @p cap bytes.
 * @param len if not NULL, receives the text's length (without the NUL),
 *        also when it did not fit.
 * @return 0; -ENOENT when absent; -EINVAL for another kind; -ENOSPC when
 *         @p cap is too small (nothing written).
 */
TW_API int tw_amp_values_get_integer_text(const tw_amp_values *v, const char *name, char *buf,
                                          size_t cap, size_t *len);
/**
 * Read a String, a Unicode or a Path; the bytes are borrowed from @p v.
 * @return 0, -ENOENT when absent, -EINVAL for another kind.
 */
TW_API int tw_amp_values_get_string(const tw_amp_values *v, const char *name, const char **data,
                                    size_t *len);
/** Read a Boolean. @return 0, -ENOENT when absent, -EINVAL for another kind. */
TW_API int tw_amp_values_get_boolean(const tw_amp_values *v, const char *name, int *out);
/** Read a Float. @return 0, -ENOENT when absent, -EINVAL for another kind. */
TW_API int tw_amp_values_get_float(const tw_amp_values *v, const char *name, double *out);
/**
 * Read a Decimal's canonical text, borrowed from @p v (NUL-terminated).
 * @return 0, -ENOENT when absent, -EINVAL for another kind.
 */
TW_API int tw_amp_values_get_decimal(const tw_amp_values *v, const char *name, const char **text,
                                     size_t *len);
/** Read a DateTime. @return 0, -ENOENT when absent, -EINVAL for another kind. */
TW_API int tw_amp_values_get_datetime(const tw_amp_values *v, const char *name,
                                      tw_amp_datetime *out);
/**
 * Read an AmpList: @p rows receives its array of rows, borrowed from @p v.
 * @return 0, -ENOENT when absent, -EINVAL for another kind.
 */
TW_API int tw_amp_values_get_amplist(const tw_amp_values *v, const char *name,
                                     const tw_amp_values *const **rows, size_t *count);

/** @return the number of values in the set. */
TW_API size_t tw_amp_values_count(const tw_amp_values *v);

/**
 * The @p i-th value, in the order they were first set.
 * @return 0, or -ENOENT past the end. Both pointers are borrowed.
 */
TW_API int tw_amp_values_entry(const tw_amp_values *v, size_t i, const char **name,
                               const tw_amp_value **value);

/**
 * Write Python's repr() of @p x: "1.0", "0.1", "1e+100", "1e-05", "-0.0",
 * "inf", "-inf", "nan".
 * @return the length of the text (at most 24); it was written, with a NUL,
 *         only if it fits in @p len bytes.
 */
TW_API size_t tw_amp_float_repr(double x, char *buf, size_t len);

/**
 * Parse a Float as Python's float() parses bytes.
 * @return 0, or -EINVAL for text Python would refuse.
 */
TW_API int tw_amp_float_parse(const char *text, size_t len, double *out);

/**
 * Parse an Integer as Python's int() parses bytes, within int64_t.
 * @return 0, -EINVAL for text Python would refuse, -ERANGE outside int64_t.
 */
TW_API int tw_amp_integer_parse(const char *text, size_t len, int64_t *out);

/* ======================================================== commands */

/** One argument or response value of a command; arrays end with a NULL name. */
typedef struct tw_amp_arg {
    const char *name;          /**< the key on the wire */
    const tw_amp_type *type;   /**< e.g. TW_AMP_T_INTEGER */
    int optional;              /**< nonzero: may be absent (then left out of the box) */
} tw_amp_arg;

/** A declared error of a command; arrays end with a NULL code. */
typedef struct tw_amp_error_spec {
    const char *code;        /**< the _error_code on the wire, e.g. "ZERO_DIVISION" */
    const char *description; /**< sent when the failure gives no description */
    int fatal;               /**< nonzero: close the connection after answering */
} tw_amp_error_spec;

/**
 * A command: a static description, borrowed by everything that uses it, so
 * it must outlive them (define it at file scope).
 */
typedef struct tw_amp_command {
    const char *name;                /**< the _command on the wire */
    const tw_amp_arg *arguments;     /**< NULL-name-terminated, or NULL for none */
    const tw_amp_arg *response;      /**< NULL-name-terminated, or NULL for none */
    const tw_amp_error_spec *errors; /**< NULL-code-terminated, or NULL for none */
    /**
     * Nonzero: a protocol switch (Twisted's ProtocolSwitchCommand). Its
     * successful answer is the connection's last AMP box: every byte after
     * it, both ways, belongs to another protocol. Its responder's deferred
     * fires with the tw_protocol * to switch to (tw_amp_switch_to()) rather
     * than with values, and the answer carries no response values, as in
     * Twisted; call it with tw_amp_call_switch().
     */
    int protocol_switch;
} tw_amp_command;

/**
 * Encode @p values into @p box against @p spec (a NULL-name-terminated
 * array): each value must have its argument's kind (and each list item its
 * element's), Unicode must be valid UTF-8, each encoding at most 65535
 * bytes. Absent optional arguments are left out.
 * @param strict nonzero: a value whose name @p spec does not list is an
 *        error (Twisted's InvalidSignature for arguments); zero ignores it
 *        (as Twisted does for responses).
 * @param err if not NULL, receives one sentence on failure.
 * @return 0; -EINVAL (a missing required value, a wrong kind, invalid text,
 *         an unknown name when strict); TW_ETOOBIG; -ENOMEM. The box may
 *         then hold some of the values.
 */
TW_API int tw_amp_values_to_box(const tw_amp_arg *spec, const tw_amp_values *values,
                                tw_amp_box *box, int strict, char *err, size_t errlen);

/**
 * Decode the keys @p spec lists from @p box; other keys are ignored.
 * @return the values, owned by the caller, or NULL after writing one
 *         sentence into @p err (a missing required key, a value that does
 *         not decode, no memory).
 */
TW_API tw_amp_values *tw_amp_values_from_box(const tw_amp_arg *spec, const tw_amp_box *box,
                                             char *err, size_t errlen);

/* ======================================================== errors */

/**
 * Make an AMP error failure: code TW_EREMOTE, carrying an error code and a
 * description (each kept up to its first NUL). A responder fails with it to
 * send a declared error; tw_amp_call_remote() fails with it when the peer
 * answered with an error. tw_failure_format() shows "CODE: description".
 * @param description NULL or "" lets the dispatcher send the declared one.
 * @return a new reference; never NULL.
 */
TW_API tw_failure *tw_amp_error_new(const char *code, const char *description);

/**
 * Find the AMP error in @p f or its causes.
 * @param code, description if not NULL, receive the texts, borrowed from @p f.
 * @return 0, or -ENOENT when @p f carries no AMP error.
 */
TW_API int tw_amp_error_info(const tw_failure *f, const char **code, const char **description);

/* ======================================================== connections */

/** One AMP connection: the protocol, plus its outstanding calls. */
typedef struct tw_amp tw_amp;

/** The commands a factory's connections answer. */
typedef struct tw_amp_dispatcher tw_amp_dispatcher;

/**
 * A responder: answer one request of the command it was registered for.
 * @param amp the connection the request came on; valid until the returned
 *        deferred fires or the connection is lost (then the deferred is
 *        cancelled), whichever comes first.
 * @param args the decoded arguments, borrowed for this call only.
 * @return a deferred (a new reference that twine takes over) that fires
 *         with a tw_amp_values * matching the command's response (the chain
 *         keeps owning it; tw_amp_succeed() makes one), or fails: with
 *         tw_amp_error_new() for an AMP error (declared or not), with
 *         anything else for UNKNOWN. NULL counts as an undeclared
 *         failure. It may fire before the responder returns, or much later
 *         (after a timer, another call_remote...). When the connection is
 *         lost first, twine cancels it, so a canceller should stop the work.
 */
typedef tw_deferred *(*tw_amp_responder_fn)(tw_amp *amp, const tw_amp_values *args, void *arg);

/**
 * Answer @p command with @p fn on the dispatcher's connections, including
 * those already open.
 * @param command borrowed: it must outlive the dispatcher.
 * @param arg passed to @p fn; borrowed likewise.
 * @return 0; -EEXIST if a command of that name is registered; -EINVAL for a
 *         NULL or nameless command or NULL @p fn; -ENOMEM.
 */
TW_API int tw_amp_register(tw_amp_dispatcher *d, const tw_amp_command *command,
                           tw_amp_responder_fn fn, void *arg);

/** @return the command registered under @p name (borrowed), or NULL. */
TW_API const tw_amp_command *tw_amp_dispatcher_find(const tw_amp_dispatcher *d,
                                                    const char *name);

/** @return how many commands are registered. */
TW_API size_t tw_amp_dispatcher_count(const tw_amp_dispatcher *d);

/**
 * How a request for a registered command ended, as the dispatcher counts
 * it (tw_amp_dispatcher_stats()). The names of tw_amp_outcome_name() are
 * stable: metrics use them as label values.
 */
typedef enum tw_amp_outcome {
    TW_AMP_OUTCOME_OK = 0,        /**< "ok": answered (or switched protocols) */
    TW_AMP_OUTCOME_ERROR,         /**< "error": answered with an AMP error (tw_amp_error_new()) */
    TW_AMP_OUTCOME_UNKNOWN,       /**< "unknown": answered UNKNOWN, the responder failed otherwise */
    TW_AMP_OUTCOME_BAD_ARGUMENTS, /**< "bad_arguments": the arguments did not decode */
    TW_AMP_OUTCOME_CANCELLED,     /**< "cancelled": the connection went before the answer */
    TW_AMP_OUTCOMES               /**< how many outcomes there are */
} tw_amp_outcome;

/** @return the stable name of @p o ("ok", "error", ...), or "unknown". Never NULL. */
TW_API const char *tw_amp_outcome_name(tw_amp_outcome o);

/**
 * The counters of the @p i th command registered on @p d (in the order of
 * registration, @p i below tw_amp_dispatcher_count()): requests received
 * on every connection of the dispatcher, by outcome. Counting is one plain
 * increment per request. Never calls back.
 * @param command receives the command (borrowed); may be NULL.
 * @param counts receives TW_AMP_OUTCOMES counters, indexed by tw_amp_outcome.
 * @return 0, or -EINVAL for a NULL @p d or @p counts or @p i out of range.
 */
TW_API int tw_amp_dispatcher_stats(const tw_amp_dispatcher *d, size_t i,
                                   const tw_amp_command **command,
                                   unsigned long long counts[TW_AMP_OUTCOMES]);

/**
 * @return how many requests named a command nobody registered (answered
 *         UNHANDLED); they are not counted by name, since a peer chooses it.
 */
TW_API unsigned long long tw_amp_dispatcher_unhandled(const tw_amp_dispatcher *d);

/** Called once a connection is up; it may call tw_amp_call_remote() at once. */
typedef void (*tw_amp_connected_fn)(tw_amp *amp, void *arg);

/**
 * Called once a connection is gone, after its outstanding calls failed and
 * before @p amp is freed. @p reason is borrowed.
 */
typedef void (*tw_amp_lost_fn)(tw_amp *amp, const tw_failure *reason, void *arg);

/**
 * Make a factory for AMP connections, servers and clients alike (AMP is
 * symmetric). It owns an empty dispatcher.
 * @return the factory, owned by the caller and freed with tw_factory_free()
 *         once nothing uses it; NULL when memory runs out.
 */
TW_API tw_factory *tw_amp_factory_new(void);

/**
 * @return the dispatcher of an AMP factory (borrowed: it lives as long as
 *         the factory), or NULL if @p f was not made by tw_amp_factory_new().
 */
TW_API tw_amp_dispatcher *tw_amp_factory_dispatcher(tw_factory *f);

/**
 * Watch the factory's connections come and go. Either function may be NULL.
 * @return 0, or -EINVAL if @p f is not an AMP factory.
 */
TW_API int tw_amp_factory_set_callbacks(tw_factory *f, tw_amp_connected_fn connected,
                                        tw_amp_lost_fn lost, void *arg);

/**
 * Limits for connections made afterwards: the largest box accepted
 * (0: TW_AMP_DEFAULT_MAX_BOX_SIZE), and how many received requests may be
 * awaiting their responders before reading pauses (0:
 * TW_AMP_DEFAULT_MAX_PENDING). The count is kept per box: boxes of the same
 * read past the limit wait, unparsed, until answers bring it down to half.
 * @return 0, or -EINVAL if @p f is not an AMP factory.
 */
TW_API int tw_amp_factory_set_limits(tw_factory *f, size_t max_box_size, size_t max_pending);

/**
 * @return the AMP connection behind @p p (e.g. the protocol a connect
 *         returned), or NULL if @p p is not one.
 */
TW_API tw_amp *tw_amp_from_protocol(tw_protocol *p);

/**
 * @return the connection's transport (borrowed), or NULL once it is lost.
 *         To close the connection, prefer tw_amp_lose_connection().
 */
TW_API tw_transport *tw_amp_transport(tw_amp *amp);

/**
 * Close the connection once every box sent so far, gathered ones included,
 * was written (tw_transport_lose_connection() after a flush). Nothing is
 * dispatched or sent afterwards: called from a responder, that responder's
 * own answer is dropped, as are the boxes that followed in the same read.
 * Outstanding calls fail when the connection is lost, from the loop, never
 * from here. Idempotent; NULL is ignored.
 */
TW_API void tw_amp_lose_connection(tw_amp *amp);

/** @return nonzero once the connection is lost or being closed. */
TW_API int tw_amp_closed(const tw_amp *amp);

/** @return how many calls wait for their answer. */
TW_API size_t tw_amp_outstanding(const tw_amp *amp);

/**
 * How a call made with tw_amp_call_remote(), tw_amp_call_remote_box() or
 * tw_amp_call_switch() ended, as its factory counts it
 * (tw_amp_factory_call_stats()). The names of tw_amp_call_outcome_name()
 * are stable: metrics use them as label values.
 */
typedef enum tw_amp_call_outcome {
    TW_AMP_CALL_ANSWERED = 0, /**< "answered": the peer answered (a switch's answer included) */
    TW_AMP_CALL_ERROR,        /**< "error": the peer answered with an AMP error (declared, UNKNOWN or UNHANDLED) */
    TW_AMP_CALL_BAD_ANSWER,   /**< "bad_answer": the answer did not decode against the command's response */
    TW_AMP_CALL_LOST,         /**< "connection_lost": the connection was lost before the answer */
    TW_AMP_CALL_CANCELLED,    /**< "cancelled": the caller cancelled the deferred (a timeout) before the answer, or the loss, came */
    TW_AMP_CALL_NOT_SENT,     /**< "not_sent": never sent (arguments that do not encode, a connection lost, closing or switched, memory) */
    TW_AMP_CALL_OUTCOMES      /**< how many outcomes there are */
} tw_amp_call_outcome;

/** @return the stable name of @p o ("answered", ...), or "unknown". Never NULL. */
TW_API const char *tw_amp_call_outcome_name(tw_amp_call_outcome o);

/**
 * @return how many command names the connections of the AMP factory @p f
 *         have called (the entries of tw_amp_factory_call_stats()); 0 for
 *         a factory that is not an AMP one.
 */
TW_API size_t tw_amp_factory_call_count(tw_factory *f);

/**
 * The counters of the calls the connections of @p f made, the @p i th
 * command name called (in the order first called, @p i below
 * tw_amp_factory_call_count()): each call counted once, by outcome, when
 * its outcome is known. A call is counted under its command's name (for
 * tw_amp_call_remote_box() the name given), so the caller, never the peer,
 * decides how many entries there are. Never calls back.
 * @param command receives the name (borrowed, valid as long as @p f); may be NULL.
 * @param counts receives TW_AMP_CALL_OUTCOMES counters, indexed by tw_amp_call_outcome.
 * @return 0, or -EINVAL for a factory that is not an AMP one, a NULL
 *         @p counts or @p i out of range.
 */
TW_API int tw_amp_factory_call_stats(tw_factory *f, size_t i, const char **command,
                                     unsigned long long counts[TW_AMP_CALL_OUTCOMES]);

/**
 * Call @p command on the peer with @p args (borrowed, encoded at once) and
 * a fresh _ask tag.
 * @return a new reference to a deferred that fires with the decoded
 *         response, a tw_amp_values * the chain owns; or fails with
 *         TW_EREMOTE when the peer answered with an error
 *         (tw_amp_error_info() gives its code and description), TW_EPROTO
 *         when the answer does not decode against the command's response,
 *         TW_ECONNLOST (caused by the connection's reason) when the
 *         connection was lost before the answer, -EINVAL when @p args do not
 *         encode (the sentence says why; nothing was sent). It never fires
 *         synchronously except with a failure. Cancelling it only stops
 *         waiting: the answer, when it arrives, is dropped. NULL only when
 *         memory runs out.
 */
TW_API tw_deferred *tw_amp_call_remote(tw_amp *amp, const tw_amp_command *command,
                                       const tw_amp_values *args);

/**
 * Call a command by name with raw bytes, untyped, as Twisted's
 * callRemoteString: @p args (borrowed; NULL for none) is sent as it is,
 * plus _command and _ask.
 * @return as tw_amp_call_remote(), but the deferred fires with the answer
 *         box (a tw_amp_box * the chain owns) without its _answer key.
 */
TW_API tw_deferred *tw_amp_call_remote_box(tw_amp *amp, const char *command,
                                           const tw_amp_box *args);

/**
 * Send @p command without asking for an answer (no _ask: Twisted's
 * requiresAnswer = False). The tag counter advances as in Twisted.
 * @return 0; -EINVAL if @p args do not encode; TW_ESTATE once the
 *         connection is lost or closing; -ENOMEM.
 */
TW_API int tw_amp_send(tw_amp *amp, const tw_amp_command *command, const tw_amp_values *args);

/**
 * Call a protocol-switch command (tw_amp_command.protocol_switch), as
 * Twisted's callRemote does with a ProtocolSwitchCommand and its protocol
 * factory. From the call on, the connection sends no AMP box: other calls
 * fail with TW_ESTATE, tw_amp_send() returns TW_ESTATE, and answers to the
 * peer's requests are dropped. When the answer arrives, @p factory builds
 * the new protocol for the peer's address, setting its factory field to
 * @p factory; it gets connection_made on the connection's transport,
 * then the deferred fires with the decoded response, then the new protocol
 * receives the bytes that followed the answer in the same read, and all
 * that come after. From then on the new protocol hears everything the
 * transport says (data, pause and resume, half-close if it has
 * read_connection_lost, the loss of the connection, after which the
 * factory's client_connection_lost runs) and is destroyed with the
 * connection (tw_amp_switched_protocol() finds it). An error answer or a
 * lost connection fails the deferred as tw_amp_call_remote() does, and
 * switches nothing: the connection speaks AMP again, and the factory's
 * client_connection_failed runs. A factory that refuses to build (NULL)
 * closes the connection and fails the deferred with -ENOMEM.
 * @param factory borrowed: counted as a user (tw_factory_start()) from the
 *        call until the switch fails or the switched connection is lost.
 * @return as tw_amp_call_remote(); -EINVAL failures also for a command not
 *         declared a protocol switch or a NULL factory; TW_ESTATE failures
 *         while another switch is pending or done.
 */
TW_API tw_deferred *tw_amp_call_switch(tw_amp *amp, const tw_amp_command *command,
                                       const tw_amp_values *args, tw_factory *factory);

/**
 * A deferred that has already fired with @p p, for the responder of a
 * protocol-switch command: once the answer is written, @p p gets
 * connection_made on the connection's transport, then the bytes that
 * followed the request (those already read included), and owns the
 * connection from then on, as described at tw_amp_call_switch(). Until
 * then the deferred's chain owns @p p, and destroys it through
 * p->ops->destroy if the switch does not happen (the request was sent
 * without _ask, or the connection was lost first). A responder that
 * answers later fires its deferred with a tw_protocol * and
 * tw_amp_protocol_free as the value's destructor.
 * @param p a protocol built for this connection (by a factory's
 *        build_protocol, or by hand), not yet connected.
 * @return a new reference, or NULL when memory runs out (@p p is then
 *         destroyed).
 */
TW_API tw_deferred *tw_amp_switch_to(tw_protocol *p);

/**
 * Twisted's amp.StartTLS: the command "StartTLS", no arguments, an empty
 * answer, after which both sides speak AMP over TLS.
 */
TW_API extern const tw_amp_command tw_amp_start_tls_command;

/**
 * Answer StartTLS on the dispatcher's connections with @p ctx: the answer
 * goes out in the clear, and the connection switches to TLS as it leaves
 * (tw_transport_start_tls(), server side), as Twisted's server does. A
 * connection already in TLS refuses a second one (UNKNOWN).
 * @param ctx a server context, referenced by the dispatcher (so by its
 *        factory) until it is freed.
 * @return as tw_amp_register(); -EINVAL for a client context.
 */
TW_API int tw_amp_serve_start_tls(tw_amp_dispatcher *d, tw_tls_context *ctx);

/**
 * Ask the peer to switch to TLS (Twisted's callRemote(StartTLS)), then
 * switch this side as a client with @p ctx when it agrees. Boxes sent
 * meanwhile (calls, answers) are held and go out once TLS is on, as in
 * Twisted; if the peer refuses, they go out in the clear, as the
 * connection goes on in the clear.
 * @param ctx a client context, referenced until the answer. Note that
 *        twine checks the server's name (tw_tls_context_set_hostname(),
 *        or the insecure option), which Twisted's StartTLS does not.
 * @return a new deferred reference, or NULL when memory runs out; it fires
 *         with the (empty) answer's values once TLS is started (its
 *         handshake then runs, and a failed one ends the connection with
 *         TW_ETLS), or fails as tw_amp_call_remote() does; TW_ESTATE when
 *         TLS is already on or starting, -EINVAL for a server context.
 */
TW_API tw_deferred *tw_amp_start_tls(tw_amp *amp, tw_tls_context *ctx);

/** Destroy a protocol through p->ops->destroy, if it has one; NULL is ignored. */
TW_API void tw_amp_protocol_free(void *p);

/**
 * @return the protocol the connection switched to (borrowed: the
 *         connection owns it), or NULL while it speaks AMP.
 */
TW_API tw_protocol *tw_amp_switched_protocol(const tw_amp *amp);

/**
 * A deferred that has already fired with @p values, for responders that
 * answer at once.
 * @param values taken over; NULL stands for an empty response.
 * @return a new reference, or NULL when memory runs out (@p values is then
 *         freed).
 */
TW_API tw_deferred *tw_amp_succeed(tw_amp_values *values);

/**
 * A deferred that has already failed with tw_amp_error_new(@p code,
 * @p description), for responders that refuse at once.
 * @return a new reference, or NULL when memory runs out.
 */
TW_API tw_deferred *tw_amp_fail(const char *code, const char *description);

TW_END_DECLS

#endif
