/* Keys, validator set, genesis and the client workload. Every key is derived
 * from the run's PRNG with crypto_sign_seed_keypair, so a seed gives the same
 * keys, the same transactions and the same signatures every time.
 *
 * The workload mixes transactions that pass with ones that break a rule, so
 * that blocks record failures too: issues into the treasury (until the small
 * currency runs into its maximum supply), payments from the treasury,
 * transfers between clients (many of them overdrafts or from keys without an
 * account), issues signed by a key that is not the issuer, and exact
 * duplicates of earlier transactions sent to another validator. */
#include "tests/sim/sim.h"

#include <stdio.h>
#include <string.h>

#define ISSUERS 2 /* clients 0 and 1 issue LEAF and BRIX */

static void derive_key(sim_world *w, kn_keypair *kp)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    for (size_t i = 0; i < sizeof seed; i += 8) {
        uint64_t x = sim_rng_next(&w->rng);
        memcpy(seed + i, &x, 8);
    }
    KN_REQUIRE(crypto_sign_seed_keypair(kp->pk, kp->sk, seed) == 0);
    sodium_memzero(seed, sizeof seed);
}

static void add_currency(ledger_genesis *g, const char *code, const char *name, uint64_t max,
                         const uint8_t issuer[KN_PK_BYTES])
{
    ledger_currency *c = &g->currencies[g->n_currencies++];
    snprintf(c->code, sizeof c->code, "%s", code);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->city, sizeof c->city, "Simulation");
    c->scale = 2;
    c->max_supply = max;
    c->flags = LEDGER_CUR_P2P;
    c->n_issuer_admins = 1;
    c->issuer_threshold = 1;
    memcpy(c->issuer_admins[0], issuer, KN_PK_BYTES);
}

void sim_workload_setup(sim_world *w)
{
    memset(&w->vs, 0, sizeof w->vs);
    w->vs.n = w->cfg.n;
    for (uint32_t i = 0; i < w->cfg.n; i++) {
        derive_key(w, &w->vkeys[i]);
        memcpy(w->vs.v[i].pk, w->vkeys[i].pk, KN_PK_BYTES);
        w->vs.v[i].power = w->cfg.powers[i];
    }
    KN_REQUIRE(cons_valset_init(&w->vs) == 0);
    for (uint32_t i = 0; i < SIM_CLIENTS; i++) derive_key(w, &w->clients[i]);
    ledger_genesis *g = &w->genesis;
    memset(g, 0, sizeof *g);
    snprintf(g->chain_id, sizeof g->chain_id, "%s", w->chain_id);
    g->time_ms = SIM_GENESIS_TIME_MS;
    add_currency(g, "LEAF", "Leaf", 100000000, w->clients[0].pk);
    add_currency(g, "BRIX", "Brick", 20000, w->clients[1].pk);
    g->n_admins = 1;
    memcpy(g->admins[0], w->clients[0].pk, KN_PK_BYTES);
    g->n_validators = w->vs.n;
    memcpy(g->validators, w->vs.v, sizeof w->vs.v[0] * w->vs.n);
}

static uint32_t pick_client(sim_world *w, uint32_t not)
{
    for (;;) {
        uint32_t c = (uint32_t)sim_rng_below(&w->rng, SIM_CLIENTS);
        if (c != not) return c;
    }
}

static void make_tx(sim_world *w, kn_buf *out)
{
    static ledger_tx tx;
    memset(&tx, 0, sizeof tx);
    snprintf(tx.chain_id, sizeof tx.chain_id, "%s", w->chain_id);
    tx.nonce = ++w->tx_nonce;
    tx.expiry_height = sim_rng_pm(&w->rng, 50) ? 3 : 100000; /* a few expire */
    tx.n_ops = 1;
    ledger_op *op = &tx.ops[0];
    uint32_t cur = (uint32_t)sim_rng_below(&w->rng, ISSUERS);
    snprintf(op->currency, sizeof op->currency, "%s", cur ? "BRIX" : "LEAF");
    const kn_keypair *signer;
    uint64_t roll = sim_rng_below(&w->rng, 100);
    if (roll < 15) { /* issue into the treasury */
        op->kind = LEDGER_OP_ISSUE;
        signer = &w->clients[cur];
        op->amount = sim_rng_range(&w->rng, 1, 6000);
        snprintf(op->ref, sizeof op->ref, "reserve-%llu", (unsigned long long)tx.nonce);
    } else if (roll < 35) { /* the treasury pays a client, at times beyond its means */
        op->kind = LEDGER_OP_TRANSFER;
        signer = &w->clients[cur];
        memcpy(op->to, w->clients[pick_client(w, SIM_CLIENTS)].pk, KN_PK_BYTES);
        op->amount = sim_rng_range(&w->rng, 1, 3000);
    } else if (roll < 90) { /* transfer, often more than the payer holds */
        op->kind = LEDGER_OP_TRANSFER;
        uint32_t from = pick_client(w, SIM_CLIENTS);
        signer = &w->clients[from];
        memcpy(op->from, signer->pk, KN_PK_BYTES);
        memcpy(op->to, w->clients[pick_client(w, from)].pk, KN_PK_BYTES);
        op->amount = sim_rng_range(&w->rng, 1, 2500);
    } else { /* an issue signed by a key that is not the issuer */
        op->kind = LEDGER_OP_ISSUE;
        signer = &w->clients[pick_client(w, cur)];
        op->amount = sim_rng_range(&w->rng, 1, 100);
        snprintf(op->ref, sizeof op->ref, "forged-%llu", (unsigned long long)tx.nonce);
    }
    KN_REQUIRE(ledger_tx_sign(&tx, signer) == 0);
    ledger_tx_encode(&tx, out);
}

void sim_workload_next(sim_world *w, kn_buf *out)
{
    w->txs_made++;
    if (w->n_sent_txs && sim_rng_pm(&w->rng, 120)) {
        const kn_buf *old = &w->sent_txs[sim_rng_below(&w->rng, w->n_sent_txs)];
        kn_buf_append(out, old->data, old->len);
        return;
    }
    make_tx(w, out);
    kn_buf *slot = &w->sent_txs[w->n_sent_txs < 64 ? w->n_sent_txs++ : sim_rng_below(&w->rng, 64)];
    kn_buf_reset(slot);
    kn_buf_append(slot, out->data, out->len);
}
