#include "experiments/train.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "models/serialize.h"

namespace anode::experiments {

namespace {

constexpr int kCounters = 6;  // SolveStats' fields

void counters_to(const ode::SolveStats& s, float* out) {
  const std::int64_t v[kCounters] = {s.nfe_forward, s.nfe_backward, s.accepted,
                                     s.rejected, s.accepted_backward, s.rejected_backward};
  for (int i = 0; i < kCounters; ++i) out[i] = static_cast<float>(v[i]);
}

ode::SolveStats counters_from(const float* in) {
  auto n = [&](int i) { return static_cast<std::int64_t>(std::llround(in[i])); };
  ode::SolveStats s;
  s.nfe_forward = n(0);
  s.nfe_backward = n(1);
  s.accepted = n(2);
  s.rejected = n(3);
  s.accepted_backward = n(4);
  s.rejected_backward = n(5);
  return s;
}

bool parallel(const dist::World* w) { return w != nullptr && w->size() > 1; }

// Rows [r B / K, (r + 1) B / K) of a batch of B rows for rank r of K.
Shard shard_of(Index rows, const dist::World* w) {
  if (!parallel(w)) return Shard{0, rows, rows};
  const Index k = w->size(), r = w->rank();
  return Shard{rows * r / k, rows * (r + 1) / k, rows};
}

}  // namespace

Trainer::Trainer(std::vector<Parameter<float>*> params, std::function<ode::SolveStats()> stats, std::string who,
                 const dist::World* world, bool check_sync)
    : params_(std::move(params)), stats_(std::move(stats)), who_(std::move(who)), world_(world),
      check_sync_(check_sync) {
  if (!parallel(world_)) return;
  Index n = 0;
  for (const Parameter<float>* p : params_) n += p->size();
  fused_.resize(static_cast<std::size_t>(n + 1 + kCounters));
  // Rank 0's initial parameters, in one broadcast.
  float* at = fused_.data();
  for (Parameter<float>* p : params_) at = std::copy(p->value().begin(), p->value().end(), at);
  world_->broadcast(std::span<float>(fused_.data(), static_cast<std::size_t>(n)));
  at = fused_.data();
  for (Parameter<float>* p : params_) {
    std::copy(at, at + p->size(), p->value().begin());
    at += p->size();
  }
}

Shard Trainer::shard(Index rows) const { return shard_of(rows, world_); }

std::uint64_t Trainer::checksum() const {
  std::uint64_t h = dist::kHashSeed;
  for (const Parameter<float>* p : params_) {
    h = dist::hash_bytes(p->value().data(), sizeof(float) * static_cast<std::size_t>(p->size()), h);
  }
  return h;
}

StepResult Trainer::gradient(Index rows, const ShardLoss& loss) {
  if (rows < 1) throw std::logic_error(who_ + ": a gradient of an empty batch");
  for (Parameter<float>* p : params_) p->zero_grad();
  tape_.clear();
  const Shard s = shard(rows);
  StepResult r;
  if (s.rows() > 0) {  // a batch smaller than the world leaves some ranks idle
    Var<float> l = loss(tape_, s);
    tape_.backward(l);
    r.loss = l.item();
    if (stats_) r.stats = stats_();
  }
  if (!parallel(world_)) return r;
  // The whole batch's mean: each shard's gradient and loss weighted by its
  // share of the rows, summed over the ranks in one allreduce.
  const float w = static_cast<float>(static_cast<double>(s.rows()) / static_cast<double>(rows));
  float* at = fused_.data();
  for (Parameter<float>* p : params_) {
    const float* g = p->grad().data();
    for (Index j = 0; j < p->size(); ++j) *at++ = w * g[j];
  }
  *at++ = static_cast<float>(w * r.loss);
  counters_to(r.stats, at);
  const Stopwatch clock;
  world_->sum(fused_);
  allreduce_seconds_ += clock.seconds();
  at = fused_.data();
  for (Parameter<float>* p : params_) {
    std::copy(at, at + p->size(), p->grad().data());
    at += p->size();
  }
  r.loss = *at++;
  r.stats = counters_from(at);
  return r;
}

StepResult Trainer::step(Optimizer<float>& opt, Index rows, const ShardLoss& loss) {
  StepResult r = gradient(rows, loss);
  if (!std::isfinite(r.loss)) throw std::runtime_error(who_ + ": the loss became " + std::to_string(r.loss));
  opt.step();
  ++steps_;
  if (check_sync_ && parallel(world_)) {
    world_->check_same(checksum(), who_ + ": the parameters after step " + std::to_string(steps_));
  }
  return r;
}

namespace {

// Rows [begin, end) of a [n, ...] tensor, as a view.
TensorView<const float> rows_of(const Tensor<float>& t, Index begin, Index end) {
  const Shape& s = t.shape();
  const Index row = s[0] > 0 ? t.size() / s[0] : 0;
  std::array<Index, kMaxRank> dims{};
  std::copy(s.dims().begin(), s.dims().end(), dims.begin());
  dims[0] = end - begin;
  return TensorView<const float>{t.data() + begin * row,
                                 Shape(std::span<const Index>(dims.data(), static_cast<std::size_t>(s.rank())))};
}

}  // namespace

template <class Model>
ShardLoss batch_loss(Model& model, Objective objective, const Tensor<float>& x, const Tensor<float>* targets,
                     std::span<const int> labels) {
  return [&model, objective, &x, targets, labels](Tape<float>& tape, const Shard& s) {
    Var<float> out = model(tape.constant(rows_of(x, s.begin, s.end)), true);
    Var<float> loss =
        objective == Objective::kCrossEntropy
            ? softmax_cross_entropy<float>(out, labels.subspan(static_cast<std::size_t>(s.begin),
                                                               static_cast<std::size_t>(s.rows())))
            : models::regression_loss(out, tape.constant(rows_of(*targets, s.begin, s.end)));
    // RNODE's kinetic and Jacobian terms, when the model's block has them on.
    const Var<float> reg = model.regularization();
    return reg.valid() ? add(loss, reg) : loss;
  };
}

template <class Model>
FitResult fit(Model& model, Optimizer<float>& opt, datasets::Batcher<float>& batches, Objective objective,
              const FitOptions& options, const Progress& progress, const std::string& who) {
  const dist::World* world = options.data_parallel ? &dist::World::get() : nullptr;
  Trainer trainer(model.parameters(), [&model] { return model.stats(); }, who, world, options.check_sync);
  FitResult result;
  Stopwatch clock;
  const Index per_epoch = batches.num_batches();
  Index total = per_epoch * options.epochs;
  if (options.max_steps > 0) total = std::min(total, options.max_steps);
  double epoch_loss = 0;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    batches.start_epoch(epoch);
    epoch_loss = 0;
    Index in_epoch = 0;
    while (result.steps < total && batches.next()) {
      const Tensor<float>& x = batches.features();
      const StepResult r = trainer.step(opt, x.shape()[0],
                                        batch_loss(model, objective, x, &batches.targets(), batches.labels()));
      ++result.steps;
      ++in_epoch;
      result.total += r.stats;
      epoch_loss += r.loss;
      StepInfo info;
      info.epoch = epoch;
      info.epochs = options.epochs;
      info.step = result.steps;
      info.steps = total;
      info.last_of_epoch = batches.batch_index() + 1 == per_epoch || result.steps == total;
      info.loss = r.loss;
      info.stats = r.stats;
      const std::string extra = options.after_step ? options.after_step(info) : std::string();
      const bool line = options.progress_every > 0
                            ? (result.steps % options.progress_every == 0 || result.steps == total)
                            : info.last_of_epoch;
      if (line) {
        const double n = static_cast<double>(result.steps);
        char buf[320];
        std::snprintf(buf, sizeof(buf), "%-34s epoch %d/%d  step %lld/%lld  loss %.4f (epoch mean %.4f)  nfe/step %.1f/%.1f%s",
                      who.c_str(), epoch + 1, options.epochs, static_cast<long long>(result.steps),
                      static_cast<long long>(total), r.loss, epoch_loss / static_cast<double>(in_epoch),
                      static_cast<double>(result.total.nfe_forward) / n,
                      static_cast<double>(result.total.nfe_backward) / n, extra.c_str());
        progress.line(buf);
      }
    }
  }
  result.seconds = clock.seconds();
  return result;
}

template <class Model>
std::pair<double, double> evaluate_classifier(Model& model, const Tensor<float>& x, std::span<const int> labels,
                                              Index batch, const dist::World* world) {
  const Index n = x.shape()[0];
  if (n == 0) throw std::logic_error("evaluate_classifier: an empty data set");
  Tape<float> tape;
  Index batches = 0;
  double sums[2] = {0, 0};  // correct rows, sum of the batches' mean losses
  for (Index b = 0; b < n; b += batch) {
    const Index rows = std::min(batch, n - b);
    const Shard s = shard_of(rows, world);
    ++batches;
    if (s.rows() == 0) continue;
    tape.clear();
    Tape<float>::NoGradGuard no_grad(tape);
    Var<float> logits = model(tape.constant(rows_of(x, b + s.begin, b + s.end)), false);
    std::span<const int> l = labels.subspan(static_cast<std::size_t>(b + s.begin), static_cast<std::size_t>(s.rows()));
    sums[0] += static_cast<double>(models::count_correct<float>(logits.value(), l));
    const double loss = softmax_cross_entropy<float>(logits, l).item();
    sums[1] += parallel(world) ? loss * static_cast<double>(s.rows()) / static_cast<double>(rows) : loss;
  }
  if (parallel(world)) world->sum(std::span<double>(sums, 2));
  return {sums[0] / static_cast<double>(n), sums[1] / static_cast<double>(batches)};
}

namespace {

// SolverOptions::reduce_norm over a dist::World: one allreduce of the sums
// and counts.
void allreduce_norm(void* world, double* sums, double* counts, int pieces) {
  constexpr int kMax = 64;
  const auto* w = static_cast<const dist::World*>(world);
  if (pieces > kMax) {
    w->sum(std::span<double>(sums, static_cast<std::size_t>(pieces)));
    w->sum(std::span<double>(counts, static_cast<std::size_t>(pieces)));
    return;
  }
  double buf[2 * kMax];
  std::copy(sums, sums + pieces, buf);
  std::copy(counts, counts + pieces, buf + pieces);
  w->sum(std::span<double>(buf, static_cast<std::size_t>(2 * pieces)));
  std::copy(buf, buf + pieces, sums);
  std::copy(buf + pieces, buf + 2 * pieces, counts);
}

}  // namespace

void use_global_steps(ode::SolverOptions& solver) {
  const dist::World& world = dist::World::get();
  if (world.size() == 1) return;
  solver.reduce_norm = &allreduce_norm;
  solver.reduce_context = const_cast<dist::World*>(&world);
}

void save_trained(const std::filesystem::path& path, const models::AnodeModel<float>& model) {
  models::save_model(path.string(), model);
}

void save_trained(const std::filesystem::path& path, const models::ConvOdeClassifier<float>& model) {
  const models::ConvModelConfig& c = model.config();
  const Json description = {{"model", "conv"}, {"label", c.label()}, {"channels", c.channels},
                            {"height", c.height}, {"width", c.width}, {"augment_channels", c.augment_channels},
                            {"filters", c.filters}, {"time_dependent", c.time_dependent},
                            {"classes", c.classes}, {"solver", solver_json(c.solver)},
                            {"t_end", c.t_end}, {"seed", c.seed}};
  models::save_parameters(path.string(), model.parameters(), description.dump());
}

void load_trained(const std::filesystem::path& path, const models::ModelConfig& trained,
                  models::AnodeModel<double>& model) {
  models::AnodeModel<float> file_model(trained);
  models::load_model(path.string(), file_model);
  const std::vector<Parameter<float>*>& from = file_model.parameters();
  const std::vector<Parameter<double>*>& to = model.parameters();
  if (from.size() != to.size()) {
    throw models::ModelFileError(path.string() + ": holds " + std::to_string(from.size()) +
                                 " parameters, the model has " + std::to_string(to.size()));
  }
  for (std::size_t i = 0; i < from.size(); ++i) {
    if (from[i]->name() != to[i]->name() || from[i]->shape() != to[i]->shape()) {
      throw models::ModelFileError(path.string() + ": parameter '" + from[i]->name() + "' " +
                                   from[i]->shape().str() + " does not fit '" + to[i]->name() + "' " +
                                   to[i]->shape().str());
    }
    const Tensor<float>& src = from[i]->value();
    Tensor<double>& dst = to[i]->value();
    for (Index j = 0; j < src.size(); ++j) dst[j] = src[j];
  }
}

#define ANODE_TRAIN_INSTANTIATE(Model)                                                                      \
  template FitResult fit<Model>(Model&, Optimizer<float>&, datasets::Batcher<float>&, Objective,            \
                                const FitOptions&, const Progress&, const std::string&);                   \
  template ShardLoss batch_loss<Model>(Model&, Objective, const Tensor<float>&, const Tensor<float>*,       \
                                       std::span<const int>);                                              \
  template std::pair<double, double> evaluate_classifier<Model>(Model&, const Tensor<float>&,               \
                                                                std::span<const int>, Index, const dist::World*);
ANODE_TRAIN_INSTANTIATE(models::AnodeModel<float>)
ANODE_TRAIN_INSTANTIATE(models::ConvOdeClassifier<float>)
#undef ANODE_TRAIN_INSTANTIATE

}  // namespace anode::experiments
