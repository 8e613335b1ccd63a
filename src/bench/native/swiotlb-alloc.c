/*
 * The native reference of `npm run bench`'s "alloc only" and "copy only" rows, compiled with the
 * machine's cc at bench time (src/bench/native.ts) and never committed as a binary. Written for this
 * project from the kernel's algorithm (kernel/dma/swiotlb.c: swiotlb_search_pool_area,
 * inc_used_and_hiwater, swiotlb_release_slots), the same steps src/swiotlb/mem.ts takes for the same
 * pattern: one pool of NSLABS slots, one area under an uncontended compare-and-exchange spinlock,
 * 4 KiB streaming maps (two slots, page aligned: stride 2), next-fit from the area's cursor,
 * iommu_is_span_boundary with a 4 GiB segment boundary, the slots marked used and the free run in
 * front renumbered, total_used and used_hiwater updated with atomics; release seeds from the run
 * behind, clears the slots' fields, merges the run in front and drops area.used and total_used.
 *
 *   swiotlb-alloc alloc SECONDS   pairs per second of search + release
 *   swiotlb-alloc copy SECONDS    4 KiB memcpy per second from a private buffer into the pool's data
 * Prints one number.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IO_TLB_SHIFT 11
#define IO_TLB_SIZE (1u << IO_TLB_SHIFT)
#define IO_TLB_SEGSIZE 128u
#define NSLABS 4096u
#define PAGE_SIZE 4096u
#define INVALID_PHYS_ADDR (~(uint64_t)0)

struct area { int lock; int used; int index; };

static uint16_t list[NSLABS];
static uint32_t alloc_size[NSLABS];
static uint8_t pad_slots[NSLABS];
static uint64_t orig_addr[NSLABS];
static struct area area0;
static int total_used, used_hiwater;
static const uint64_t pool_start = 0x80000000ull;

static void lock(struct area *a) {
  int free_ = 0;
  while (!__atomic_compare_exchange_n(&a->lock, &free_, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) free_ = 0;
}
static void unlock(struct area *a) { __atomic_store_n(&a->lock, 0, __ATOMIC_SEQ_CST); }

static int span_boundary(unsigned s, unsigned nslots, unsigned shift, unsigned max_slots) {
  return ((shift + s) % max_slots) + nslots > max_slots;
}

static int search(uint64_t orig, unsigned size) {
  const uint64_t seg_boundary_mask = 0xffffffffull;
  const uint64_t tbl_dma_addr = pool_start & seg_boundary_mask;
  const unsigned max_slots = (unsigned)(seg_boundary_mask / IO_TLB_SIZE) + 1;
  unsigned nslots = (size + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT;
  uint64_t alloc_align_mask = 0, iotlb_align_mask = 0; /* a device without min_align_mask */
  if (size >= PAGE_SIZE) alloc_align_mask = PAGE_SIZE - 1;
  alloc_align_mask |= IO_TLB_SIZE - 1;
  iotlb_align_mask &= ~alloc_align_mask;
  unsigned stride = (unsigned)((alloc_align_mask > iotlb_align_mask ? alloc_align_mask : iotlb_align_mask) / IO_TLB_SIZE) + 1;
  uint64_t orig_bits = orig & iotlb_align_mask;
  unsigned shift = (unsigned)(tbl_dma_addr >> IO_TLB_SHIFT);
  struct area *a = &area0;
  lock(a);
  if (nslots > NSLABS - (unsigned)a->used) { unlock(a); return -1; }
  unsigned index = (unsigned)a->index;
  int slot = -1;
  for (unsigned checked = 0; checked < NSLABS;) {
    unsigned s = index;
    uint64_t tlb = tbl_dma_addr + (uint64_t)s * IO_TLB_SIZE;
    if ((tlb & alloc_align_mask) || (orig && (tlb & iotlb_align_mask) != orig_bits)) {
      index = index + 1 >= NSLABS ? 0 : index + 1;
      checked++;
      continue;
    }
    if (!span_boundary(s, nslots, shift, max_slots) && list[s] >= nslots) { slot = (int)s; break; }
    index = index + stride >= NSLABS ? 0 : index + stride;
    checked += stride;
  }
  if (slot < 0) { unlock(a); return -1; }
  for (unsigned j = 0; j < nslots; j++) {
    list[slot + j] = 0;
    alloc_size[slot + j] = size - j * IO_TLB_SIZE;
  }
  unsigned count = 0;
  for (int i = slot - 1; i >= (int)(slot - (slot & (IO_TLB_SEGSIZE - 1))) && list[i]; i--) list[i] = ++count;
  unsigned next = index + nslots;
  a->index = next >= NSLABS ? 0 : (int)next;
  a->used += (int)nslots;
  unlock(a);
  int new_used = __atomic_add_fetch(&total_used, (int)nslots, __ATOMIC_SEQ_CST);
  int old = __atomic_load_n(&used_hiwater, __ATOMIC_SEQ_CST);
  while (new_used > old && !__atomic_compare_exchange_n(&used_hiwater, &old, new_used, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return slot;
}

static int release(uint64_t tlb) {
  unsigned i0 = (unsigned)((tlb - pool_start) / IO_TLB_SIZE);
  if (orig_addr[i0] == INVALID_PHYS_ADDR) return 0;
  unsigned index = i0 - pad_slots[i0];
  unsigned nslots = (alloc_size[index] + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT;
  struct area *a = &area0;
  lock(a);
  for (unsigned i = index; i < index + nslots; i++) if (list[i]) { unlock(a); return 0; }
  unsigned count = 0, after = index + nslots;
  if (after < index - (index & (IO_TLB_SEGSIZE - 1)) + IO_TLB_SEGSIZE && after < NSLABS) count = list[after];
  for (int i = (int)after - 1; i >= (int)index; i--) {
    list[i] = (uint16_t)++count;
    orig_addr[i] = INVALID_PHYS_ADDR;
    alloc_size[i] = 0;
    pad_slots[i] = 0;
  }
  for (int i = (int)index - 1; i >= (int)(index - (index & (IO_TLB_SEGSIZE - 1))) && list[i]; i--) list[i] = (uint16_t)++count;
  a->used -= (int)nslots;
  unlock(a);
  __atomic_sub_fetch(&total_used, (int)nslots, __ATOMIC_SEQ_CST);
  return 1;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: swiotlb-alloc alloc|copy SECONDS\n"); return 2; }
  int copy = strcmp(argv[1], "copy") == 0;
  double seconds = atof(argv[2]);
  for (unsigned i = 0; i < NSLABS; i++) {
    list[i] = (uint16_t)(IO_TLB_SEGSIZE - (i & (IO_TLB_SEGSIZE - 1)));
    orig_addr[i] = INVALID_PHYS_ADDR;
  }
  static unsigned char priv[2 * PAGE_SIZE], data[NSLABS * IO_TLB_SIZE];
  memset(priv, 1, sizeof priv);
  const uint64_t orig = 0x100000000ull;
  long pairs = 0;
  double t0 = now_s(), t1 = t0;
  while (t1 - t0 < seconds) {
    for (int k = 0; k < 4096; k++) {
      if (copy) {
        memcpy(data, priv, PAGE_SIZE);
        __asm__ volatile("" : : "r"(data) : "memory");
      } else {
        int s = search(orig, PAGE_SIZE);
        if (s < 0) return 1;
        orig_addr[s] = orig;
        release(pool_start + (uint64_t)s * IO_TLB_SIZE);
      }
    }
    pairs += 4096;
    t1 = now_s();
  }
  printf("%.0f\n", (double)pairs / (t1 - t0));
  return 0;
}
