// What the autograd graph keeps alive: an op's Node holds the values its backward reads
// (OpDef::saved) and only the shapes of the rest, and a Variable's value goes with its last
// handle. So an activation no backward reads is freed as soon as the forward is done with it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "kernels/op_inputs.h"
#include "tests/error_of.h"

using namespace sd;
using ::testing::HasSubstr;

namespace {

Variable random_var(const Shape& s, uint64_t seed, bool requires_grad) {
  return Variable(make_op_inputs({"", {{s}}}, seed, DType::F32, Device::CPU)[0], requires_grad);
}

const Node& node_of(const Variable& v) { return *v.impl()->node; }

}  // namespace

TEST(AutogradMemory, ShapeOnlyTensorKeepsShapeAndRefusesData) {
  Tensor t = Tensor::full({2, 3}, 1.5).shape_only();
  EXPECT_TRUE(t.defined());
  EXPECT_FALSE(t.has_data());
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_THAT(t.desc(), HasSubstr("shape only"));
  EXPECT_THAT(error_of([&] { t.data<float>(); }), HasSubstr("f32[2, 3] cpu (shape only)"));
  EXPECT_THAT(error_of([&] { t.to_floats(); }), HasSubstr("OpDef::saved"));
}

// conv2d keeps x and w, not its output nor the bias; add keeps neither operand. With the
// handles gone, the conv's output lives nowhere: the add's Node holds only its shape.
TEST(AutogradMemory, NodesKeepOnlyWhatTheBackwardReads) {
  Variable x = random_var({2, 3, 5, 5}, 1, true), w = random_var({4, 3, 3, 3}, 2, true),
           b = random_var({4}, 3, true), s = random_var({2, 4, 5, 5}, 4, false);
  Variable y;
  {
    Variable h = ops::conv2d(x, w, b, 1, 1);
    y = ops::add(h, s);
    const Node& conv = node_of(h);
    EXPECT_TRUE(conv.saved_in[0].has_data());   // x
    EXPECT_TRUE(conv.saved_in[1].has_data());   // w
    EXPECT_FALSE(conv.saved_in[2].has_data());  // b: its gradient needs only the shape
    EXPECT_FALSE(conv.saved_out[0].has_data());
    EXPECT_TRUE(h.value().has_data());  // the handle still holds it
  }
  const Node& add = node_of(y);
  EXPECT_FALSE(add.saved_in[0].has_data());
  EXPECT_FALSE(add.saved_in[1].has_data());
  EXPECT_EQ(add.saved_in[0].shape(), (Shape{2, 4, 5, 5}));
  EXPECT_FALSE(add.inputs[0]->value.has_data()) << "the conv output outlived its last handle";
  EXPECT_TRUE(s.value().has_data());  // a leaf the caller still holds keeps its value

  // The backward runs on what was kept and gives every gradient.
  backward(ops::sum(y));
  for (const Variable* v : {&x, &w, &b}) {
    ASSERT_TRUE(v->grad().defined());
    EXPECT_EQ(v->grad().shape(), v->shape());
  }
  EXPECT_NEAR(b.grad().to_floats()[0], 2 * 5 * 5, 1e-4);  // d sum / d b_o = B*H*W
}

// A backward that reads a tensor its OpDef does not save fails loudly instead of reading freed
// memory: mul's backward reads both operands, so with only `a` saved it must refuse.
TEST(AutogradMemory, ABackwardReadingAnUnsavedTensorFails) {
  OpDef mul = Registry::get().at("mul");
  mul.saved_in = {true, false};
  Tensor a = Tensor::full({2, 3}, 2.0), b = Tensor::full({2, 3}, 3.0), y = Tensor::full({2, 3}, 6.0);
  std::vector<Tensor> in{a, b}, out{y};
  keep_saved(mul, in, out);
  Attrs attrs = Attrs::object();
  GradCall call{in, out, {Tensor::full({2, 3}, 1.0)}, {Tensor::empty({2, 3}), Tensor()}, attrs};
  EXPECT_THAT(error_of([&] { mul.cpu.backward(call); }), HasSubstr("shape only"));
}

TEST(AutogradMemory, RegistryRefusesASavedNameThatIsNoInputOrOutput) {
  Registry scratch;
  OpDef d = Registry::get().at("add");
  d.saved = {"a", "z"};
  EXPECT_THAT(error_of([&] { scratch.add(d); }),
              HasSubstr("op 'add' saves 'z', which is none of its inputs or outputs"));
}
