/*
 * The bounce copy (src/memory/copy.ts) as a Node-API addon: memmove between SharedArrayBuffers
 * named by small integer ids, so a copy is one call with no argument to convert and no typed array
 * to unwrap.
 * Built by `npm ci` (binding.gyp, node-gyp against the machine's Node headers); without it the
 * copies use TypedArray.prototype.set, which V8 runs for shared memory as a word-at-a-time
 * relaxed-atomic loop (2-3x slower for 4 KiB), never with the C library's memmove.
 *
 *   set_args(block)               block: Float64Array(5) over a SharedArrayBuffer, the operands of copy()
 *   register(bytes, sab) -> id    bytes: a Uint8Array over the whole SharedArrayBuffer sab
 *   copy()                        block = [dstId, dstOff, srcId, srcOff, len]
 *   memmove_loop(times)           the same copy `times` times (the bench's native reference)
 *
 * Invariants (per thread: each worker thread loads the addon into its own napi_env and has its own
 * registry):
 *   1. A live id names the whole backing store of one SharedArrayBuffer object of this thread, and
 *      stays live until that object is collected: a finalizer on the object frees the id, and only
 *      a freed id is handed out again. A SharedArrayBuffer cannot be detached, so the store does not
 *      move or shrink while the object lives. The caller (copy.ts CopyRegion) keeps the object
 *      reachable for as long as it uses the id.
 *   2. copy() checks every id and range against the registry before touching memory, and throws a
 *      RangeError instead of copying out of bounds.
 * Other threads may read or write the same shared bytes during a copy, as with TypedArray.set: the
 * callers own their ranges (a bounce buffer between map and unmap), so nothing else writes there.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint8_t *data; /* NULL: a free id */
  int64_t len;
} region_t;

typedef struct {
  region_t *regions;
  uint32_t n;    /* ids handed out so far (live or free) */
  uint32_t cap;
  uint32_t *free_ids;
  uint32_t nfree;
  uint32_t holders; /* the env's instance data and each pending finalizer: freed at zero */
  const double *args; /* the argument block of copy() (set_args) */
  napi_ref args_ref;
  napi_env env; /* the env this registry belongs to */
} registry_t;

/* The registry of the env loaded last on this thread: copy() takes it from here when the env matches,
 * which saves the napi_get_cb_info call (about 8 ns of a 4 KiB copy's 70). */
static _Thread_local registry_t *thread_reg;

/* The argument block's layout (copy.ts ARG_*). */
enum { ARG_DST_ID, ARG_DST_OFF, ARG_SRC_ID, ARG_SRC_OFF, ARG_LEN, ARGS };

typedef struct {
  registry_t *reg;
  uint32_t id;
} finalize_hint_t;

static void registry_put(registry_t *reg) {
  if (--reg->holders != 0) return;
  free(reg->regions);
  free(reg->free_ids);
  free(reg);
}

static void instance_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  if (thread_reg == data) thread_reg = NULL;
  registry_put((registry_t *)data);
}

static void region_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  finalize_hint_t *h = (finalize_hint_t *)data;
  registry_t *reg = h->reg;
  reg->regions[h->id].data = NULL;
  reg->regions[h->id].len = 0;
  reg->free_ids[reg->nfree++] = h->id;
  free(h);
  registry_put(reg);
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static napi_value do_register(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  registry_t *reg;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&reg) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "bounce_copy.register(bytes, sab): two arguments expected");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_uint8_array || offset != 0) {
    napi_throw_type_error(env, NULL, "bounce_copy.register: bytes must be a Uint8Array over a whole SharedArrayBuffer");
    return NULL;
  }
  uint32_t id;
  if (reg->nfree > 0) {
    id = reg->free_ids[--reg->nfree];
  } else {
    if (reg->n == reg->cap) {
      uint32_t cap = reg->cap == 0 ? 16 : reg->cap * 2;
      region_t *r = realloc(reg->regions, cap * sizeof *r);
      uint32_t *f = r == NULL ? NULL : realloc(reg->free_ids, cap * sizeof *f);
      if (f == NULL) {
        if (r != NULL) reg->regions = r;
        napi_throw_error(env, NULL, "bounce_copy.register: out of memory");
        return NULL;
      }
      reg->regions = r;
      reg->free_ids = f;
      reg->cap = cap;
    }
    id = reg->n++;
  }
  finalize_hint_t *h = malloc(sizeof *h);
  if (h == NULL) {
    reg->free_ids[reg->nfree++] = id;
    napi_throw_error(env, NULL, "bounce_copy.register: out of memory");
    return NULL;
  }
  h->reg = reg;
  h->id = id;
  if (napi_add_finalizer(env, argv[1], h, region_finalize, NULL, NULL) != napi_ok) {
    free(h);
    reg->free_ids[reg->nfree++] = id;
    napi_throw_type_error(env, NULL, "bounce_copy.register: sab must be the SharedArrayBuffer object");
    return NULL;
  }
  reg->holders++;
  reg->regions[id].data = (uint8_t *)data;
  reg->regions[id].len = (int64_t)length;
  napi_value out;
  napi_create_uint32(env, id, &out);
  return out;
}

/*
 * copy(): its five operands come from the thread's argument block (set_args), not as call
 * arguments: reading five arguments through Node-API costs 50-70 ns a call, more than the 4 KiB
 * memmove itself, while five stores into a Float64Array cost the caller a few ns. Doubles, so that
 * offsets past 2 GiB are exact.
 */
/* The operands in the argument block, checked: the bytes to copy to and from, or a RangeError thrown and NULL. */
static const region_t *operands(napi_env env, napi_callback_info info, uint8_t **to, const uint8_t **from, size_t *n) {
  registry_t *reg = thread_reg;
  if (reg == NULL || reg->env != env) napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&reg);
  const double *a = reg->args;
  if (a == NULL) {
    throw_range(env, "bounce_copy.copy: no argument block (set_args)");
    return NULL;
  }
  int64_t v[5];
  for (int i = 0; i < 5; i++) {
    /* in range of int64 and whole: anything else (NaN, a fraction, a negative) is rejected here */
    if (!(a[i] >= 0 && a[i] < 9007199254740992.0) || (double)(int64_t)a[i] != a[i]) {
      throw_range(env, "bounce_copy.copy: an operand is not a whole number from 0 to 2^53");
      return NULL;
    }
    v[i] = (int64_t)a[i];
  }
  const int64_t dst = v[ARG_DST_ID], doff = v[ARG_DST_OFF], src = v[ARG_SRC_ID], soff = v[ARG_SRC_OFF], len = v[ARG_LEN];
  if (dst >= reg->n || src >= reg->n || reg->regions[dst].data == NULL || reg->regions[src].data == NULL) {
    throw_range(env, "bounce_copy.copy: not a registered region");
    return NULL;
  }
  const region_t *d = &reg->regions[dst], *s = &reg->regions[src];
  if (doff > d->len - len || soff > s->len - len) {
    throw_range(env, "bounce_copy.copy: range outside its region");
    return NULL;
  }
  *to = d->data + doff;
  *from = s->data + soff;
  *n = (size_t)len;
  return d;
}

static napi_value do_copy(napi_env env, napi_callback_info info) {
  uint8_t *to;
  const uint8_t *from;
  size_t n;
  if (operands(env, info, &to, &from, &n) != NULL) memmove(to, from, n);
  return NULL;
}

/*
 * memmove_loop(times): the copy the argument block names, `times` times in one call: the native
 * reference of `npm run bench` (the same memmove on the same bytes without the call from
 * JavaScript), alternated with copyBytes in one thread.
 */
static napi_value do_memmove_loop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t times;
  if (argc != 1 || napi_get_value_int64(env, argv[0], &times) != napi_ok || times < 0) {
    return throw_range(env, "bounce_copy.memmove_loop(times): a count from 0 expected");
  }
  uint8_t *to;
  const uint8_t *from;
  size_t n;
  if (operands(env, info, &to, &from, &n) == NULL) return NULL;
  for (int64_t i = 0; i < times; i++) {
    memmove(to, from, n);
    __asm__ volatile("" : : "r"(to) : "memory"); /* every copy happens */
  }
  return NULL;
}

/* set_args(block): block is a Float64Array of ARGS doubles over a SharedArrayBuffer (which cannot be
 * detached or moved), kept alive by a reference for the life of the env. */
static napi_value do_set_args(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  registry_t *reg;
  napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&reg);
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (argc != 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_float64_array || length < ARGS) {
    napi_throw_type_error(env, NULL, "bounce_copy.set_args(block): a Float64Array of 5 expected");
    return NULL;
  }
  if (reg->args_ref != NULL) napi_delete_reference(env, reg->args_ref);
  if (napi_create_reference(env, argv[0], 1, &reg->args_ref) != napi_ok) {
    reg->args_ref = NULL;
    reg->args = NULL;
    napi_throw_error(env, NULL, "bounce_copy.set_args: cannot keep the block");
    return NULL;
  }
  reg->args = (const double *)data;
  return NULL;
}

NAPI_MODULE_INIT() {
  registry_t *reg = calloc(1, sizeof *reg);
  if (reg == NULL) {
    napi_throw_error(env, NULL, "bounce_copy: out of memory");
    return NULL;
  }
  reg->holders = 1;
  reg->env = env;
  if (napi_set_instance_data(env, reg, instance_finalize, NULL) != napi_ok) {
    free(reg);
    return NULL;
  }
  thread_reg = reg;
  napi_value fn;
  napi_create_function(env, "register", NAPI_AUTO_LENGTH, do_register, reg, &fn);
  napi_set_named_property(env, exports, "register", fn);
  napi_create_function(env, "copy", NAPI_AUTO_LENGTH, do_copy, reg, &fn);
  napi_set_named_property(env, exports, "copy", fn);
  napi_create_function(env, "set_args", NAPI_AUTO_LENGTH, do_set_args, reg, &fn);
  napi_set_named_property(env, exports, "set_args", fn);
  napi_create_function(env, "memmove_loop", NAPI_AUTO_LENGTH, do_memmove_loop, reg, &fn);
  napi_set_named_property(env, exports, "memmove_loop", fn);
  return exports;
}
