#include "models/serialize.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

namespace anode::models {
namespace {

constexpr char kMagic[8] = {'A', 'N', 'O', 'D', 'E', 'P', 'R', 'M'};

class Writer {
 public:
  void bytes(const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    buf_.insert(buf_.end(), c, c + n);
  }
  template <class U>
  void value(U v) {
    bytes(&v, sizeof(U));
  }
  void str(const std::string& s) {
    value<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  std::vector<char>& buffer() { return buf_; }

 private:
  std::vector<char> buf_;
};

class Reader {
 public:
  Reader(const std::string& path, const std::vector<char>& data, std::size_t end)
      : path_(path), data_(data), end_(end) {}
  void bytes(void* p, std::size_t n, const char* what) {
    if (n > end_ - pos_) fail(std::string("truncated while reading ") + what);
    std::memcpy(p, data_.data() + pos_, n);
    pos_ += n;
  }
  template <class U>
  U value(const char* what) {
    U v;
    bytes(&v, sizeof(U), what);
    return v;
  }
  std::string str(const char* what, std::size_t max_len = 1 << 20) {
    auto n = value<std::uint32_t>(what);
    if (n > max_len) fail(std::string("implausible length ") + std::to_string(n) + " for " + what);
    std::string s(n, '\0');
    bytes(s.data(), n, what);
    return s;
  }
  std::size_t pos() const { return pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw ModelFileError("parameter file '" + path_ + "': " + what);
  }

 private:
  const std::string& path_;
  const std::vector<char>& data_;
  std::size_t end_;
  std::size_t pos_ = 0;
};

void write_atomically(const std::string& path, const std::vector<char>& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw ModelFileError("parameter file '" + path + "': cannot create: " + std::strerror(errno));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw ModelFileError("parameter file '" + path + "': write failed: " + std::strerror(e));
    }
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw ModelFileError("parameter file '" + path + "': could not flush to disk");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw ModelFileError("parameter file '" + path + "': rename failed: " + std::strerror(e));
  }
}

}  // namespace

template <class T>
void save_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                     const std::string& description) {
  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.value<std::uint32_t>(kParameterFormatVersion);
  w.value<std::uint32_t>(sizeof(T));
  w.value<std::uint64_t>(description.size());
  w.bytes(description.data(), description.size());
  w.value<std::uint32_t>(static_cast<std::uint32_t>(params.size()));
  for (const Parameter<T>* p : params) {
    w.str(p->name());
    w.value<std::uint32_t>(static_cast<std::uint32_t>(p->shape().rank()));
    for (Index d : p->shape().dims()) w.value<std::uint64_t>(static_cast<std::uint64_t>(d));
    w.bytes(p->value().data(), sizeof(T) * p->size());
  }
  std::vector<char>& buf = w.buffer();
  const std::uint32_t crc = static_cast<std::uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(buf.size())));
  w.value<std::uint32_t>(crc);
  write_atomically(path, buf);
}

template <class T>
std::string load_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                            const std::string* expected_description) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError("parameter file '" + path + "': cannot open: " + std::strerror(errno));
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t min_size = sizeof(kMagic) + 4 + 4 + 8 + 4 + 4;
  if (data.size() < min_size) {
    throw ModelFileError("parameter file '" + path + "': truncated (" + std::to_string(data.size()) +
                         " bytes)");
  }
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    throw ModelFileError("parameter file '" + path + "': not an anode parameter file (bad magic)");
  }
  const std::size_t body = data.size() - 4;
  Reader r(path, data, body);
  char magic[8];
  r.bytes(magic, 8, "magic");
  const auto version = r.value<std::uint32_t>("version");
  if (version != kParameterFormatVersion) {
    r.fail("format version " + std::to_string(version) + " (this build reads version " +
           std::to_string(kParameterFormatVersion) + ")");
  }
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, data.data() + body, 4);
  const std::uint32_t crc = static_cast<std::uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(body)));
  if (crc != stored_crc) r.fail("checksum mismatch (the file is corrupted or truncated)");
  const auto scalar = r.value<std::uint32_t>("scalar type");
  if (scalar != sizeof(T)) {
    r.fail("holds " + std::string(scalar == 4 ? "float" : scalar == 8 ? "double" : "unknown") +
           " parameters, the model uses " + (sizeof(T) == 4 ? "float" : "double"));
  }
  const auto desc_len = r.value<std::uint64_t>("description length");
  if (desc_len > body) r.fail("implausible description length");
  std::string description(desc_len, '\0');
  r.bytes(description.data(), desc_len, "description");
  if (expected_description != nullptr && description != *expected_description) {
    r.fail("describes another model:\n  file:  " + description + "\n  model: " + *expected_description);
  }
  const auto count = r.value<std::uint32_t>("parameter count");
  if (count != params.size()) {
    r.fail("holds " + std::to_string(count) + " parameters, the model has " + std::to_string(params.size()));
  }
  // Read everything into staging first: the parameters change only if the
  // whole file fits.
  std::vector<Tensor<T>> staged;
  staged.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string name = r.str("parameter name");
    if (name != params[i]->name()) {
      r.fail("parameter " + std::to_string(i) + " is '" + name + "', the model expects '" +
             params[i]->name() + "'");
    }
    const auto rank = r.value<std::uint32_t>("rank");
    if (rank > static_cast<std::uint32_t>(kMaxRank)) r.fail("parameter '" + name + "' has rank " + std::to_string(rank));
    Index dims[kMaxRank];
    for (std::uint32_t d = 0; d < rank; ++d) dims[d] = static_cast<Index>(r.value<std::uint64_t>("dimension"));
    Shape shape(std::span<const Index>(dims, rank));
    if (shape != params[i]->shape()) {
      r.fail("parameter '" + name + "' has shape " + shape.str() + ", the model expects " +
             params[i]->shape().str());
    }
    Tensor<T> t(shape);
    r.bytes(t.data(), sizeof(T) * t.size(), "parameter values");
    staged.push_back(std::move(t));
  }
  if (r.pos() != body) r.fail("has " + std::to_string(body - r.pos()) + " unexpected trailing bytes");
  for (std::uint32_t i = 0; i < count; ++i) params[i]->value().assign(staged[i].view());
  return description;
}

std::string config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["input_dim"] = c.input_dim;
  j["input_layer"] = c.input_layer;
  j["feature_dim"] = c.feature_dim;
  j["input_activation"] = activation_name(c.input_activation);
  j["augmentation"] = augmentation_name(c.augmentation);
  j["augment_dim"] = c.augment_dim;
  j["order"] = c.order;
  j["learned_velocity"] = c.learned_velocity;
  j["position_only"] = c.position_only;
  j["hidden"] = c.hidden;
  j["hidden_activation"] = activation_name(c.hidden_activation);
  j["final_activation"] = activation_name(c.final_activation);
  j["time_dependent"] = c.time_dependent;
  j["solver"] = {{"method", ode::method_name(c.solver.method)},
                 {"rtol", c.solver.rtol},
                 {"atol", c.solver.atol},
                 {"steps", c.solver.steps},
                 {"step_size", c.solver.step_size},
                 {"gradient", ode::gradient_name(c.solver.gradient)}};
  j["t_end"] = c.t_end;
  j["time_noise"] = c.time_noise;
  j["noise_at_eval"] = c.noise_at_eval;
  j["readout_dim"] = c.readout_dim;
  j["readout_block"] = c.readout_block;
  j["output_dim"] = c.output_dim;
  j["head"] = c.head == Head::kRegression ? "regression" : "classification";
  j["init"] = c.init == Init::kGlorotUniform ? "glorot" : "pytorch";
  j["seed"] = c.seed;
  return j.dump();
}

ModelConfig config_from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
    ModelConfig c;
    c.input_dim = j.at("input_dim");
    c.input_layer = j.at("input_layer");
    c.feature_dim = j.at("feature_dim");
    c.input_activation = parse_activation(j.at("input_activation").get<std::string>());
    c.augmentation = parse_augmentation(j.at("augmentation").get<std::string>());
    c.augment_dim = j.at("augment_dim");
    c.order = j.at("order");
    c.learned_velocity = j.at("learned_velocity");
    c.position_only = j.at("position_only");
    c.hidden = j.at("hidden").get<std::vector<Index>>();
    c.hidden_activation = parse_activation(j.at("hidden_activation").get<std::string>());
    c.final_activation = parse_activation(j.at("final_activation").get<std::string>());
    c.time_dependent = j.at("time_dependent");
    const auto& s = j.at("solver");
    c.solver.method = ode::parse_method(s.at("method").get<std::string>());
    c.solver.rtol = s.at("rtol");
    c.solver.atol = s.at("atol");
    c.solver.steps = s.at("steps");
    c.solver.step_size = s.at("step_size");
    c.solver.gradient = ode::parse_gradient(s.at("gradient").get<std::string>());
    c.t_end = j.at("t_end");
    c.time_noise = j.at("time_noise");
    c.noise_at_eval = j.at("noise_at_eval");
    c.readout_dim = j.at("readout_dim");
    c.readout_block = j.at("readout_block");
    c.output_dim = j.at("output_dim");
    c.head = j.at("head").get<std::string>() == "regression" ? Head::kRegression : Head::kClassification;
    c.init = j.at("init").get<std::string>() == "glorot" ? Init::kGlorotUniform : Init::kPytorch;
    c.seed = j.at("seed");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(std::string("model configuration JSON: ") + e.what());
  }
}

template void save_parameters<float>(const std::string&, const std::vector<Parameter<float>*>&, const std::string&);
template void save_parameters<double>(const std::string&, const std::vector<Parameter<double>*>&, const std::string&);
template std::string load_parameters<float>(const std::string&, const std::vector<Parameter<float>*>&, const std::string*);
template std::string load_parameters<double>(const std::string&, const std::vector<Parameter<double>*>&, const std::string*);

}  // namespace anode::models
