// The model configuration as JSON (the description stored in parameter
// files): kept apart from the file format in serialize.cc, which then needs
// nothing beyond tensors and zlib (and links alone into its fuzz target).
#include <nlohmann/json.hpp>

#include "models/serialize.h"

namespace anode::models {

std::string config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["input_dim"] = c.input_dim;
  j["input_layer"] = c.input_layer;
  j["feature_dim"] = c.feature_dim;
  j["input_activation"] = activation_name(c.input_activation);
  j["augmentation"] = augmentation_name(c.augmentation);
  j["augment_dim"] = c.augment_dim;
  j["order"] = c.block.order;
  j["learned_velocity"] = c.learned_velocity;
  j["position_only"] = c.block.position_only;
  j["hidden"] = c.hidden;
  j["hidden_activation"] = activation_name(c.hidden_activation);
  j["final_activation"] = activation_name(c.final_activation);
  j["time_dependent"] = c.time_dependent;
  j["solver"] = {{"method", ode::method_name(c.block.solver.method)},
                 {"rtol", c.block.solver.rtol},
                 {"atol", c.block.solver.atol},
                 {"steps", c.block.solver.steps},
                 {"step_size", c.block.solver.step_size},
                 {"gradient", ode::gradient_name(c.block.solver.gradient)}};
  j["t_end"] = c.block.t_end;
  j["time_noise"] = c.block.time_noise;
  j["noise_at_eval"] = c.block.noise_at_eval;
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
    c.block.order = j.at("order");
    c.learned_velocity = j.at("learned_velocity");
    c.block.position_only = j.at("position_only");
    c.hidden = j.at("hidden").get<std::vector<Index>>();
    c.hidden_activation = parse_activation(j.at("hidden_activation").get<std::string>());
    c.final_activation = parse_activation(j.at("final_activation").get<std::string>());
    c.time_dependent = j.at("time_dependent");
    const auto& s = j.at("solver");
    c.block.solver.method = ode::parse_method(s.at("method").get<std::string>());
    c.block.solver.rtol = s.at("rtol");
    c.block.solver.atol = s.at("atol");
    c.block.solver.steps = s.at("steps");
    c.block.solver.step_size = s.at("step_size");
    c.block.solver.gradient = ode::parse_gradient(s.at("gradient").get<std::string>());
    c.block.t_end = j.at("t_end");
    c.block.time_noise = j.at("time_noise");
    c.block.noise_at_eval = j.at("noise_at_eval");
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

}  // namespace anode::models
