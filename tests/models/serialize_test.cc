#include "models/serialize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace anode::models {
namespace {

std::string tmp(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

ModelConfig small(Index p) {
  ModelConfig c;
  c.input_dim = 2;
  c.augmentation = p > 0 ? Augmentation::kZeroPad : Augmentation::kNone;
  c.augment_dim = p;
  c.hidden = {5};
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 3;
  c.seed = 7;
  return c;
}

std::string message(std::function<void()> f) {
  try {
    f();
  } catch (const ModelFileError& e) {
    return e.what();
  }
  return "";
}

TEST(Serialize, RoundTripRestoresEveryParameter) {
  AnodeModel<float> a(small(2));
  const std::string path = tmp("round_trip.anode");
  save_model(path, a);
  ModelConfig c = small(2);
  AnodeModel<float> b(c);
  for (Parameter<float>* p : b.parameters()) p->value().fill(0.0f);
  load_model(path, b);
  for (std::size_t i = 0; i < a.parameters().size(); ++i) {
    const Tensor<float>& x = a.parameters()[i]->value();
    const Tensor<float>& y = b.parameters()[i]->value();
    for (Index j = 0; j < x.size(); ++j) EXPECT_EQ(x[j], y[j]);
  }
  // No temporary file is left behind.
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(Serialize, ConfigJsonRoundTrip) {
  ModelConfig c = small(3);
  c.block.time_noise = 0.25;
  c.block.order = 1;
  c.block.solver.gradient = ode::Gradient::kAdjoint;
  EXPECT_EQ(config_to_json(config_from_json(config_to_json(c))), config_to_json(c));
  EXPECT_THROW(config_from_json("{\"input_dim\": 2}"), ValueError);
}

TEST(Serialize, WrongModelIsRejectedAndParametersUntouched) {
  AnodeModel<float> a(small(2));
  const std::string path = tmp("wrong_model.anode");
  save_model(path, a);
  AnodeModel<float> other(small(3));
  const float before = other.parameters()[0]->value()[0];
  std::string msg = message([&] { load_model(path, other); });
  EXPECT_NE(msg.find("wrong_model.anode"), std::string::npos);
  EXPECT_NE(msg.find("another model"), std::string::npos);
  EXPECT_EQ(other.parameters()[0]->value()[0], before);
  // Without the description check, the shapes still disagree.
  msg = message([&] { load_parameters<float>(path, other.parameters()); });
  EXPECT_NE(msg.find("shape"), std::string::npos);
  AnodeModel<double> as_double(small(2));
  msg = message([&] { load_parameters<double>(path, as_double.parameters()); });
  EXPECT_NE(msg.find("float"), std::string::npos);
}

TEST(Serialize, TruncatedAndCorruptedFiles) {
  AnodeModel<float> a(small(2));
  const std::string path = tmp("damaged.anode");
  save_model(path, a);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  };
  write(bytes.substr(0, bytes.size() / 2));
  std::string msg = message([&] { load_model(path, a); });
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
  write(bytes.substr(0, 10));
  EXPECT_NE(message([&] { load_model(path, a); }).find("truncated"), std::string::npos);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  write(flipped);
  EXPECT_NE(message([&] { load_model(path, a); }).find("checksum"), std::string::npos);
  std::string not_ours = bytes;
  not_ours[0] = 'X';
  write(not_ours);
  EXPECT_NE(message([&] { load_model(path, a); }).find("bad magic"), std::string::npos);
  EXPECT_NE(message([&] { load_model(tmp("missing.anode"), a); }).find("cannot open"), std::string::npos);
}

TEST(Serialize, UnwritableDirectory) {
  AnodeModel<float> a(small(0));
  std::string msg = message([&] { save_model("/nonexistent-dir/x.anode", a); });
  EXPECT_NE(msg.find("cannot create"), std::string::npos);
}

}  // namespace
}  // namespace anode::models
