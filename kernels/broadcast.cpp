#include "kernels/broadcast.h"

namespace sd {

Broadcast make_broadcast(const std::string& op, const Shape& a, const Shape& b) {
  Broadcast bc;
  bc.ndim = int(std::max(a.size(), b.size()));
  SD_CHECK(bc.ndim <= kMaxDims, op, ": at most ", kMaxDims, " dimensions, got ", shape_str(a),
           " and ", shape_str(b));
  int64_t sa = 1, sb = 1;
  for (int d = bc.ndim - 1; d >= 0; --d) {
    int ia = d - (bc.ndim - int(a.size())), ib = d - (bc.ndim - int(b.size()));
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    SD_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast (dimension ", d, ": ", da, " vs ", db, ")");
    // As in NumPy, a 1 stretches to the other size, 0 included: [2, 0, 3] + [3] is [2, 0, 3].
    bc.out_shape[d] = da == 1 ? db : da;
    bc.a_stride[d] = da == 1 ? 0 : sa;
    bc.b_stride[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
    bc.numel *= bc.out_shape[d];
  }
  bc.same = a == b;
  return bc;
}

Shape broadcast_shape(const Broadcast& bc) { return Shape(bc.out_shape, bc.out_shape + bc.ndim); }

}  // namespace sd
