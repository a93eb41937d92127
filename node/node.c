#include "node/ledger/ledger.h"
