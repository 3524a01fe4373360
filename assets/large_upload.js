/* Large-file upload for the New Experiment page (see dashapp/uploads.py).
 *
 * The file picked in #large-upload-input (opened by #large-upload-button) is sent as the raw body of one POST to
 * /upload/large — never read into the page — with the browser's upload progress shown in
 * #large-upload-progress. The server's answer ({sha256, filename, size}) goes into the
 * #large-upload-staged store, which starts the analysis (a background callback that shows
 * DuckDB's progress). Components are updated with dash_clientside.set_props.
 */
(function () {
    "use strict";

    function setProps(id, props) {
        if (window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props(id, props);
        }
    }

    function megabytes(bytes) {
        return (bytes / 1048576).toLocaleString(undefined, {maximumFractionDigits: 1}) + " MB";
    }

    function prefix() {
        const config = document.getElementById("_dash-config");
        try {
            return (config && JSON.parse(config.textContent).requests_pathname_prefix) || "/";
        } catch (error) {
            return "/";
        }
    }

    function finish(input, message) {
        setProps("large-upload-box", {style: {display: "none"}});
        setProps("large-upload-message", {children: message || ""});
        input.value = "";
    }

    // One file input for the whole app, outside the React tree, so that Dash re-rendering the
    // page never drops a pick in progress; #large-upload-button opens it.
    function fileInput() {
        let input = document.getElementById("large-upload-input");
        if (!input) {
            input = document.createElement("input");
            input.type = "file";
            input.id = "large-upload-input";
            input.accept = ".csv,.tsv,.txt,.parquet";
            input.className = "visually-hidden";
            input.setAttribute("aria-label", "Large result file");
            document.body.appendChild(input);
        }
        return input;
    }

    document.addEventListener("click", function (event) {
        if (event.target && event.target.closest && event.target.closest("#large-upload-button")) {
            fileInput().click();
        }
    });

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", fileInput);
    } else {
        fileInput();
    }

    document.addEventListener("change", function (event) {
        const input = event.target;
        if (!input || input.id !== "large-upload-input" || !input.files || input.files.length === 0) {
            return;
        }
        const file = input.files[0];
        const button = document.getElementById("large-upload-button");
        const limit = Number(button ? button.getAttribute("data-limit") : 0);
        if (limit && file.size > limit) {
            finish(input, file.name + " is " + megabytes(file.size) + ", above the large-file limit of " +
                megabytes(limit) + " (EXPERIMENTOS_LARGE_UPLOAD_LIMIT_MB).");
            return;
        }
        setProps("large-upload-message", {children: ""});
        setProps("large-upload-box", {style: {display: "block"}});
        setProps("large-upload-progress", {value: 0, label: ""});
        setProps("large-upload-text", {children: "Sending " + file.name + " (" + megabytes(file.size) + ")…"});
        const request = new XMLHttpRequest();
        request.open("POST", prefix() + "upload/large?name=" + encodeURIComponent(file.name));
        request.setRequestHeader("X-ExperimentOS-Upload", "1");
        request.setRequestHeader("Content-Type", "application/octet-stream");
        request.upload.onprogress = function (progress) {
            if (!progress.lengthComputable) {
                return;
            }
            const done = Math.floor(100 * progress.loaded / progress.total);
            setProps("large-upload-progress", {value: done, label: done + "%"});
            setProps("large-upload-text", {children: "Sending " + file.name + ": " + megabytes(progress.loaded) +
                " of " + megabytes(progress.total)});
        };
        request.onload = function () {
            let body = {};
            try {
                body = JSON.parse(request.responseText);
            } catch (error) {
                body = {error: "the server answered " + request.status};
            }
            if (request.status === 200 && body.sha256) {
                finish(input, "");
                setProps("large-upload-staged", {data: {sha256: body.sha256, filename: body.filename,
                    size: body.size, at: Date.now()}});
            } else {
                finish(input, "Upload refused: " + (body.error || ("the server answered " + request.status)) + ".");
            }
        };
        request.onerror = function () {
            finish(input, "The upload of " + file.name + " failed (the connection to the server was lost); try again.");
        };
        request.send(file);
    });
})();
