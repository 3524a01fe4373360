/* Cell renderers for the History grid (dash-ag-grid looks them up by name on this object).
 * React.createElement escapes text, so experiment names and tags never become markup. */
(function () {
    "use strict";
    const functions = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});
    const DECISION_CLASSES = {launch: "text-bg-success", hold: "text-bg-warning", rollback: "text-bg-danger"};

    functions.DecisionBadge = function (props) {
        const value = props.value;
        if (!value || !DECISION_CLASSES[value]) {
            return React.createElement("span", {className: "text-muted"}, value || "—");
        }
        return React.createElement("span", {className: "badge " + DECISION_CLASSES[value] + " text-uppercase"}, value);
    };

    functions.TagBadges = function (props) {
        const tags = Array.isArray(props.value) ? props.value : [];
        if (!tags.length) {
            return React.createElement("span", {className: "text-muted"}, "—");
        }
        return React.createElement("span", null, tags.map(function (tag, index) {
            return React.createElement("span", {key: index, className: "badge rounded-pill text-bg-light border me-1"},
                                       String(tag));
        }));
    };
})();
