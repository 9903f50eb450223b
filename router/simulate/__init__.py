"""`tierwise simulate`: what a policy would have done with real traffic, before you apply it.

`traffic` reads a request log export or a labelled routing file; `replay` runs it through the
real scorer, decisions, budget gate and alert rules on a simulated clock; `report` adds it up
(cost against all-frontier and all-cheap, per window, budget lines, alerts, quality) and plots
it. Nothing is sent to an upstream or an alert sink.
"""
