#ifndef ANODE_AUTODIFF_FUNCTION_REF_H_
#define ANODE_AUTODIFF_FUNCTION_REF_H_

#include <memory>
#include <type_traits>
#include <utility>

namespace anode {

template <class Signature>
class FunctionRef;

/// A non-owning, non-allocating reference to a callable (like
/// absl::FunctionRef). The callable must outlive the reference; use it for
/// parameters, never for storage beyond the call. Unlike std::function it
/// never touches the heap, which keeps training steps allocation-free.
template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
    requires(std::is_invocable_r_v<R, F&, Args...> &&
             !std::is_same_v<std::remove_cvref_t<F>, FunctionRef>)
  FunctionRef(F&& f) noexcept  // NOLINT: implicit by design
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

}  // namespace anode

#endif  // ANODE_AUTODIFF_FUNCTION_REF_H_
