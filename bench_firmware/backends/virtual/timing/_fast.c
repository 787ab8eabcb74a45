/* The cycle model's hot paths in C: the block hook, the flash data-read hook and the
 * instruction-fetch plans with their LRU caches (see model.py for the rules and their sources).
 *
 * This file holds no timing rule of its own. The Python model decodes and costs every new edge
 * (and makes its fetch plans) exactly as it does without this library, and installs the result
 * here through fast_set_edge / fast_new_plan / fast_new_record; the hooks below replay those
 * costs, the Cortex-M7 2-bit counters and indirect-target memory, and the LRU caches with the
 * same semantics as model.py's Python hooks (OrderedDict per set, least recent first), so the
 * counts are identical. Unicorn calls the hooks directly (uc_hook_add with these function
 * pointers); Python runs only on a new edge (the miss callback) and on divides.
 *
 * Built by _fast.py with the host C compiler; no dynamic allocation on the hot paths except
 * when a table grows on a miss.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*miss_fn)(uint32_t source, uint64_t address, uint32_t size);
typedef int (*reg_fn)(void *uc, int regid, void *value);

typedef struct {
    uint64_t key; /* source record << 32 | block address */
    uint64_t cost[4]; /* static: [0]; conditional: per counter state; indirect: [ok, bad] */
    uint32_t size;
    uint32_t dest;
    uint32_t count;
    int32_t plan;
    uint8_t kind;
    uint8_t it_reads;
    uint8_t next[4];
} edge_t;

typedef struct {
    uint8_t look;
    uint8_t self_evicting;
    uint32_t n;
    uint32_t first; /* index into entries */
} plan_t;

typedef struct {
    uint64_t line;
    uint64_t cost;
} entry_t;

typedef struct {
    uint32_t mask; /* sets - 1 */
    uint32_t ways; /* 0: off, holds nothing */
    uint64_t *lines; /* sets x ways, each set least recent first */
    uint32_t *used;
} cache_t;

typedef struct {
    /* The first four fields are read in place by model.py (_fast_hooks): keep them first. */
    uint64_t cycles;
    uint64_t instructions;
    uint64_t ifills;
    uint64_t dmisses;
    uint32_t cur;
    uint8_t it_reads;
    uint8_t failed;
    miss_fn miss;
    reg_fn reg_read, reg_write;
    int epsr_reg;
    uint32_t it_bits;
    /* data path */
    uint32_t dshift;
    uint64_t dline_bytes;
    uint64_t drefill;
    uint64_t dlo, dhi;
    cache_t ic, dc;
    /* records: predictor state (2-bit counter or last target, -1: none) */
    int64_t *pred;
    uint32_t nrec, caprec;
    /* edges: open-addressing table of indices into edges[] */
    edge_t *edges;
    uint32_t nedge, capedge;
    int32_t *table;
    uint32_t tmask;
    /* plans */
    plan_t *plans;
    uint32_t nplan, capplan;
    entry_t *entries; /* the plans' (line, cycles if missing) */
    uint32_t nentry, capentry;
    int32_t *resident;
    uint32_t nres, capres;
} fast_t;

static int grow(void **array, uint32_t *cap, uint32_t need, size_t item) {
    if (need <= *cap) return 0;
    uint32_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *p = realloc(*array, (size_t)n * item);
    if (!p) return -1;
    *array = p;
    *cap = n;
    return 0;
}

static int cache_init(cache_t *c, uint32_t sets, uint32_t ways) {
    c->mask = sets - 1;
    c->ways = ways;
    size_t slots = (size_t)sets * (ways ? ways : 1);
    c->lines = calloc(slots, sizeof(uint64_t));
    c->used = calloc(sets, sizeof(uint32_t));
    return (c->lines && c->used) ? 0 : -1;
}

/* LruCache.touch: True on a hit (made most recent), False when refilled (or the cache is off). */
static inline int cache_touch(cache_t *c, uint64_t line) {
    if (!c->ways) return 0;
    uint32_t set = (uint32_t)line & c->mask;
    uint64_t *lines = c->lines + (size_t)set * c->ways;
    uint32_t used = c->used[set];
    for (uint32_t i = used; i-- > 0;) {
        if (lines[i] == line) {
            if (i + 1 != used) {
                memmove(lines + i, lines + i + 1, (used - i - 1) * sizeof(uint64_t));
                lines[used - 1] = line;
            }
            return 1;
        }
    }
    if (used >= c->ways) {
        memmove(lines, lines + 1, (used - 1) * sizeof(uint64_t));
        used -= 1;
    }
    lines[used] = line;
    c->used[set] = used + 1;
    return 0;
}

void fast_destroy(fast_t *s);

fast_t *fast_create(void *miss, void *reg_read, void *reg_write, int epsr_reg, uint32_t it_bits,
                    uint32_t isets, uint32_t iways, uint32_t dsets, uint32_t dways,
                    uint32_t dshift, uint64_t drefill) {
    fast_t *s = calloc(1, sizeof(fast_t));
    if (!s) return NULL;
    s->miss = (miss_fn)miss;
    s->reg_read = (reg_fn)reg_read;
    s->reg_write = (reg_fn)reg_write;
    s->epsr_reg = epsr_reg;
    s->it_bits = it_bits;
    s->dshift = dshift;
    s->dline_bytes = (uint64_t)1 << dshift;
    s->drefill = drefill;
    s->tmask = 1023;
    s->table = malloc(1024 * sizeof(int32_t));
    if (!s->table || cache_init(&s->ic, isets, iways) || cache_init(&s->dc, dsets, dways)) {
        fast_destroy(s);
        return NULL;
    }
    memset(s->table, 0xff, 1024 * sizeof(int32_t));
    return s;
}

void fast_destroy(fast_t *s) {
    if (!s) return;
    free(s->ic.lines); free(s->ic.used); free(s->dc.lines); free(s->dc.used);
    free(s->pred); free(s->edges); free(s->table); free(s->plans);
    free(s->entries); free(s->resident);
    free(s);
}

int64_t fast_new_record(fast_t *s, int64_t pred) {
    if (grow((void **)&s->pred, &s->caprec, s->nrec + 1, sizeof(int64_t))) return -1;
    s->pred[s->nrec] = pred;
    return s->nrec++;
}

int64_t fast_new_plan(fast_t *s, int self_evicting, uint32_t n, const uint64_t *lines,
                      const uint64_t *costs) {
    if (grow((void **)&s->plans, &s->capplan, s->nplan + 1, sizeof(plan_t))) return -1;
    if (grow((void **)&s->entries, &s->capentry, s->nentry + n, sizeof(entry_t))) return -1;
    for (uint32_t i = 0; i < n; i++) {
        s->entries[s->nentry + i].line = lines[i];
        s->entries[s->nentry + i].cost = costs[i];
    }
    plan_t *p = &s->plans[s->nplan];
    p->look = 1;
    p->self_evicting = (uint8_t)(self_evicting != 0);
    p->n = n;
    p->first = s->nentry;
    s->nentry += n;
    return s->nplan++;
}

static inline uint32_t hash(uint64_t key, uint32_t mask) {
    key *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(key >> 32) & mask;
}

static inline edge_t *find(fast_t *s, uint64_t key) {
    uint32_t i = hash(key, s->tmask);
    for (;;) {
        int32_t e = s->table[i];
        if (e < 0) return NULL;
        if (s->edges[e].key == key) return &s->edges[e];
        i = (i + 1) & s->tmask;
    }
}

static int rehash(fast_t *s) {
    uint32_t size = (s->tmask + 1) * 2;
    int32_t *t = malloc((size_t)size * sizeof(int32_t));
    if (!t) return -1;
    memset(t, 0xff, (size_t)size * sizeof(int32_t));
    for (uint32_t e = 0; e < s->nedge; e++) {
        uint32_t i = hash(s->edges[e].key, size - 1);
        while (t[i] >= 0) i = (i + 1) & (size - 1);
        t[i] = (int32_t)e;
    }
    free(s->table);
    s->table = t;
    s->tmask = size - 1;
    return 0;
}

/* Install (or replace) the edge from record `source` to the block at `address`. */
int fast_set_edge(fast_t *s, uint32_t source, uint64_t address, uint32_t size, uint32_t dest,
                  int32_t plan, int it_reads, int kind, uint32_t count, const uint64_t *cost,
                  const uint8_t *next) {
    uint64_t key = (uint64_t)source << 32 | (address & 0xffffffffu);
    edge_t *e = find(s, key);
    if (!e) {
        if (grow((void **)&s->edges, &s->capedge, s->nedge + 1, sizeof(edge_t))) return -1;
        if ((s->nedge + 1) * 2 > s->tmask + 1 && rehash(s)) return -1;
        e = &s->edges[s->nedge];
        e->key = key;
        uint32_t i = hash(key, s->tmask);
        while (s->table[i] >= 0) i = (i + 1) & s->tmask;
        s->table[i] = (int32_t)s->nedge++;
    }
    e->size = size;
    e->dest = dest;
    e->plan = plan;
    e->it_reads = (uint8_t)(it_reads != 0);
    e->kind = (uint8_t)kind;
    e->count = count;
    memcpy(e->cost, cost, sizeof(e->cost));
    memcpy(e->next, next, sizeof(e->next));
    return 0;
}

void fast_set_miss(fast_t *s, void *miss) { s->miss = (miss_fn)miss; }

/* model.py fetch(): each line of the plan made most recent, or charged and refilled. */
static uint64_t fetch(fast_t *s, int32_t index) {
    plan_t *p = &s->plans[index];
    uint64_t penalty = 0, before = s->ifills;
    const entry_t *entries = s->entries + p->first;
    for (uint32_t i = 0; i < p->n; i++) {
        if (!cache_touch(&s->ic, entries[i].line)) {
            penalty += entries[i].cost;
            s->ifills += 1;
        }
    }
    if (s->ifills != before) { /* a refill may have evicted lines of plans found resident */
        for (uint32_t i = 0; i < s->nres; i++) s->plans[s->resident[i]].look = 1;
        s->nres = 0;
    }
    if (!p->self_evicting) {
        p->look = 0;
        if (!grow((void **)&s->resident, &s->capres, s->nres + 1, sizeof(int32_t))) {
            s->resident[s->nres++] = index;
        } else {
            p->look = 1; /* out of memory: keep looking, which costs only speed */
        }
    }
    return penalty;
}

/* uc_cb_hookcode_t for UC_HOOK_BLOCK; user_data is the model. */
void fast_block(void *uc, uint64_t address, uint32_t size, fast_t *s) {
    (void)uc;
    uint32_t source = s->cur;
    uint64_t key = (uint64_t)source << 32 | (address & 0xffffffffu);
    edge_t *e = find(s, key);
    if (!e || e->size != size) {
        if (s->miss(source, address, size) != 0) return; /* the exception stops the emulation */
        e = find(s, key);
        if (!e) return;
    }
    switch (e->kind) {
    case 0:
        s->cycles += e->cost[0];
        break;
    case 1: { /* conditional: per 2-bit counter state */
        int64_t state = s->pred[source];
        s->cycles += e->cost[state];
        s->pred[source] = e->next[state];
        break;
    }
    default: /* indirect: predicted when the target repeats */
        if (s->pred[source] == (int64_t)address) {
            s->cycles += e->cost[0];
        } else {
            s->cycles += e->cost[1];
            s->pred[source] = (int64_t)address;
        }
    }
    s->instructions += e->count;
    if (e->plan >= 0 && s->plans[e->plan].look) s->cycles += fetch(s, e->plan);
    s->cur = e->dest;
    s->it_reads = e->it_reads;
}

/* model.py _it_state_clearer: the Unicorn 2.1 IT-state leak workaround. */
static void clear_it(fast_t *s, void *uc) {
    uint32_t value = 0;
    s->reg_read(uc, s->epsr_reg, &value);
    if (value & s->it_bits) {
        value &= ~s->it_bits;
        s->reg_write(uc, s->epsr_reg, &value);
    }
}

/* uc_cb_hookmem_t for UC_HOOK_MEM_READ on the flash range. */
void fast_read(void *uc, int type, uint64_t address, int size, int64_t value, fast_t *s) {
    (void)type;
    (void)value;
    if (s->it_reads) clear_it(s, uc);
    uint64_t end = address + (uint64_t)size;
    if (s->dlo <= address && end <= s->dhi) return;
    uint64_t first = address >> s->dshift, last = (end - 1) >> s->dshift;
    for (uint64_t line = first; line <= last; line++) {
        if (!cache_touch(&s->dc, line)) {
            s->cycles += s->drefill;
            s->dmisses += 1;
        }
    }
    if (s->dc.ways) { /* with the cache off every read stalls: no shortcut */
        s->dlo = last << s->dshift;
        s->dhi = s->dlo + s->dline_bytes;
    }
}
